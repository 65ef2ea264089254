// Hand-written kernels for generation's products and attention, in C
// because Swift compiles for the baseline x86-64 (no AVX) and has no
// per-function target attributes. Each kernel is built for AVX-512 and for
// AVX2 with FMA, and the caller names the set (`isa`: 2 AVX-512, 1 AVX2);
// where the CPU has neither, herd_kernels_available() is 0 and Herd keeps
// to OpenBLAS and its Swift loops.
#ifndef HERD_CKERNELS_H
#define HERD_CKERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/// The best set this CPU runs the kernels with: 2 AVX-512 (F, DQ, VL,
/// BW), 1 AVX2 with FMA, 0 neither.
int herd_kernels_available(void);

/// y[r, n] (+)= Σ_k x[r, k] · w[n, k] for r < rows, n < out (row-major;
/// w is [out, in] as nn.Linear stores it), split over `threads` threads
/// by output features. Adds into y when `accumulate` is non-zero.
void herd_linear(float *y, const float *x, const float *w,
                 int rows, int in, int out, int accumulate, int threads, int isa);

/// Decode-time attention of `rows` query rows over a KV cache.
/// Row r's query heads start at q + r·qStride (heads × headDim floats);
/// its keys and values for KV head h are at keys[cacheOffset[r] + h·headStride
/// + j·headDim] for positions j ≤ position[r]; its output heads go to
/// out + r·outStride. Query head i reads KV head i / (heads / kvHeads).
/// `scratch` holds threads × maxLen floats; headDim is at most 256.
void herd_attend(float *out, int outStride, const float *q, int qStride,
                 const float *keys, const float *values, const long *cacheOffset, const int *position,
                 int rows, int heads, int kvHeads, int headDim, long headStride,
                 float *scratch, int maxLen, int threads, int isa);

#ifdef __cplusplus
}
#endif
#endif
