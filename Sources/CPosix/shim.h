// glibc's GNU extensions to posix_spawn (glibc 2.26 / 2.34), which Swift's
// Glibc module leaves out because it is not built with _GNU_SOURCE.
#include <spawn.h>
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
#define HERD_POSIX_SPAWN_SETSID 0x80

// prctl is variadic, which Swift cannot call: a child that must not
// outlive its parent (a pipeline stage whose scheduler was killed) asks
// the kernel for SIGKILL when the parent dies.
#include <sys/prctl.h>
#include <signal.h>
static inline int herd_die_with_parent(void) { return prctl(PR_SET_PDEATHSIG, SIGKILL); }
