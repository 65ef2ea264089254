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

// bf16 sums for gradients exchanged in bfloat16 (MPI has no bf16 type):
// values travel as 16-bit words; each pairwise sum is taken in fp32 and
// rounded to the nearest even bf16, as Herd's BFloat16.fromFloat does.
#include <stdint.h>
#include <string.h>
static inline void herd_bf16_sum(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    const uint16_t *a = (const uint16_t *)in;
    uint16_t *b = (uint16_t *)inout;
    for (int i = 0; i < *len; i++) {
        uint32_t x = (uint32_t)a[i] << 16, y = (uint32_t)b[i] << 16, bits;
        float fx, fy, s;
        memcpy(&fx, &x, 4); memcpy(&fy, &y, 4);
        s = fx + fy;
        memcpy(&bits, &s, 4);
        if ((bits & 0x7fffffffu) > 0x7f800000u) { b[i] = (uint16_t)((bits >> 16) | 0x40); continue; }
        bits += 0x7fffu + ((bits >> 16) & 1u);
        b[i] = (uint16_t)(bits >> 16);
    }
}
static inline MPI_Datatype herd_mpi_uint16(void) { return MPI_UINT16_T; }
// Created once per process, after MPI_Init (the static is per translation unit).
static inline MPI_Op herd_mpi_bf16_sum(void) {
    static MPI_Op op = MPI_OP_NULL;
    if (op == MPI_OP_NULL) MPI_Op_create(herd_bf16_sum, 1, &op);
    return op;
}
