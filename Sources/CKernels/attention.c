// Decode-time attention over the KV cache: for each query row and head,
// scores against every cached key up to the row's position, a softmax,
// and the values' weighted sum. One (row, head) pair at a time per thread;
// the keys and values of one head are contiguous, so each pass streams.
// Written once (attention_body.h), built for AVX-512 and AVX2 (simd.h).
#include "CKernels.h"
#include "pool.h"
#include <math.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>

typedef struct {
    float *out; int outStride; const float *q; int qStride;
    const float *keys, *values; const long *cacheOffset; const int *position;
    int rows, heads, kvHeads, headDim; long headStride; float *scratch; int maxLen;
} attend_job;

#define SIMD_AVX512
#include "simd.h"
#include "attention_body.h"
#undef SIMD_AVX512
#define SIMD_AVX2
#include "simd.h"
#include "attention_body.h"
#undef SIMD_AVX2

void herd_attend(float *out, int outStride, const float *q, int qStride,
                 const float *keys, const float *values, const long *cacheOffset, const int *position,
                 int rows, int heads, int kvHeads, int headDim, long headStride,
                 float *scratch, int maxLen, int threads, int isa) {
    if (isa < 1 || isa > herd_kernels_available() || headDim > 256 || headDim < 1) abort();
    attend_job a = { out, outStride, q, qStride, keys, values, cacheOffset, position,
                     rows, heads, kvHeads, headDim, headStride, scratch, maxLen };
    int items = rows * heads;
    int parts = threads < items ? threads : items;
    herd_parallel(isa == 2 ? attend_part_avx512 : attend_part_avx2, &a, parts);   // the pool takes at least one part
}

#else
void herd_attend(float *out, int outStride, const float *q, int qStride,
                 const float *keys, const float *values, const long *cacheOffset, const int *position,
                 int rows, int heads, int kvHeads, int headDim, long headStride,
                 float *scratch, int maxLen, int threads, int isa) { abort(); }
#endif
