// glibc's GNU extensions to posix_spawn (glibc 2.26 / 2.34), which Swift's
// Glibc module leaves out because it is not built with _GNU_SOURCE.
#include <spawn.h>
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
#define HERD_POSIX_SPAWN_SETSID 0x80
