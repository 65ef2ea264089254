// zlib, for reading gzip-compressed corpora (Data/Inputs/ByteSource.swift).
#include <zlib.h>

// inflateInit2 is a macro (it passes the header's version and the struct's
// size, so that zlib can refuse a mismatched library); Swift does not import
// function-like macros, so this wrapper makes the same call.
static inline int herd_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}
