// Generation's linear layers, y = x · Wᵀ with W stored [out, in].
//
// - One row (a single sequence decoding): each output is a dot product of
//   one weight row with x, the rows read one after another. The weights do
//   not fit in cache, so this is a stream from memory; reading rows one at
//   a time keeps the hardware prefetcher on a single sequential stream
//   (reading four rows at once, as OpenBLAS's sgemv does, measured at 13
//   against 30 GB/s on a 32 MB-L3 EPYC).
// - Several rows: x is transposed once (rows become vector lanes), then
//   six weight rows at a time are broadcast one element at a time against
//   two vectors of rows of x: 12 accumulators, 12 FMAs for 8 loads, every
//   weight read once from memory and reused across all rows from L1.
//   Nothing is packed (OpenBLAS packs the weights on every call: a quarter
//   of a 64-sequence step), and the next six rows are prefetched while
//   these are used.
// The kernels are written once (linear_body.h) and built for AVX-512 and
// for AVX2 (simd.h).
#include "CKernels.h"
#include "pool.h"
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>

int herd_kernels_available(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
                 && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") ? 2
               : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
    }
    return cached;
}

typedef struct {
    float *y; const float *x; const float *w; const float *xt;
    int rows, in, out, mp, accumulate;
} linear_job;

enum { NR = 6 };

#define SIMD_AVX512
#include "simd.h"
#include "linear_body.h"
#undef SIMD_AVX512
#define SIMD_AVX2
#include "simd.h"
#include "linear_body.h"
#undef SIMD_AVX2

/// Parts worth a thread each: at least ~100k multiply-adds a part, since
/// handing a part to a helper costs about a microsecond.
static int parts_for(long work, int threads) {
    long p = work / 100000;
    if (p < 1) p = 1;
    return (int)(p < threads ? p : threads);
}

void herd_linear(float *y, const float *x, const float *w, int rows, int in, int out, int accumulate, int threads, int isa) {
    if (isa < 1 || isa > herd_kernels_available()) abort();
    linear_job j = { y, x, w, 0, rows, in, out, 0, accumulate };
    int parts = parts_for((long)rows * in * out, threads < 1 ? 1 : threads);
    if (rows == 1) { herd_parallel(isa == 2 ? one_row_avx512 : one_row_avx2, &j, parts); return; }
    const int lanes = isa == 2 ? 16 : 8;
    int mp = (rows + lanes - 1) / lanes * lanes;
    float *xt = aligned_alloc(64, ((size_t)in * mp * sizeof(float) + 63) / 64 * 64);
    if (!xt) abort();
    // A vector's worth of rows at a time: that many sequential reads, one vector written per k.
    for (int r0 = 0; r0 < mp; r0 += lanes)
        for (int k = 0; k < in; k++) {
            float *col = xt + (long)k * mp;
            for (int r = r0; r < r0 + lanes; r++) col[r] = r < rows ? x[(long)r * in + k] : 0;
        }
    j.xt = xt; j.mp = mp;
    herd_parallel(isa == 2 ? many_rows_avx512 : many_rows_avx2, &j, parts);
    free(xt);
}

#else
int herd_kernels_available(void) { return 0; }
void herd_linear(float *y, const float *x, const float *w, int rows, int in, int out, int accumulate, int threads, int isa) { abort(); }
#endif
