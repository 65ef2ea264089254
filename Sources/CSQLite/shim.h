// SQLite (Debian's libsqlite3-dev), for the job store.
#include <sqlite3.h>
// SQLITE_TRANSIENT is a cast macro Swift cannot import.
static inline void (*herd_sqlite_transient(void))(void *) { return SQLITE_TRANSIENT; }
