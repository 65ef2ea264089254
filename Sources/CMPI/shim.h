// OpenMPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are C macros that
// expand to addresses of library globals; Swift cannot import such macros, so
// each one gets a static inline accessor here.
#include <mpi.h>

static inline MPI_Comm herd_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm herd_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype herd_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype herd_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype herd_mpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype herd_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype herd_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op herd_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op herd_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op herd_mpi_min(void) { return MPI_MIN; }
static inline void *herd_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int herd_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int herd_mpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static inline int herd_mpi_success(void) { return MPI_SUCCESS; }
static inline int herd_mpi_undefined(void) { return MPI_UNDEFINED; }
static inline MPI_Status *herd_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
