// libzstd, with the advanced (multithreaded, streaming) parameters visible.
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
