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
//   32 rows of x: 12 accumulators, 12 FMAs for 8 loads, every weight read
//   once from memory and reused across all rows from L1. Nothing is packed
//   (OpenBLAS packs the weights on every call: a quarter of a 64-sequence
//   step), and the next six rows are prefetched while these are used.
#include "CKernels.h"
#include "pool.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))

int herd_kernels_available(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
              && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
    }
    return cached;
}

typedef struct {
    float *y; const float *x; const float *w; const float *xt;
    int rows, in, out, mp, accumulate;
} linear_job;

AVX512 static float dot(const float *a, const float *b, int n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int k = 0;
    for (; k + 64 <= n; k += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + k + 16), _mm512_loadu_ps(b + k + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + k + 32), _mm512_loadu_ps(b + k + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + k + 48), _mm512_loadu_ps(b + k + 48), s3);
    }
    for (; k + 16 <= n; k += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), s0);
    if (k < n) {
        __mmask16 m = (__mmask16)((1u << (n - k)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + k), _mm512_maskz_loadu_ps(m, b + k), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

AVX512 static void one_row(void *ctx, int part, int parts) {
    linear_job *j = ctx;
    int lo = (int)((long)j->out * part / parts), hi = (int)((long)j->out * (part + 1) / parts);
    for (int n = lo; n < hi; n++) {
        float v = dot(j->w + (long)n * j->in, j->x, j->in);
        j->y[n] = j->accumulate ? j->y[n] + v : v;
    }
}

enum { NR = 6 };

/// Stores (or adds) one output feature's lanes into y's column n, rows m..
AVX512 static inline void put(const linear_job *j, int n, int m, int valid, __m512 c0, __m512 c1) {
    float lanes[32];
    _mm512_storeu_ps(lanes, c0);
    _mm512_storeu_ps(lanes + 16, c1);
    float *y = j->y + (long)m * j->out + n;
    if (j->accumulate) for (int l = 0; l < valid; l++) y[(long)l * j->out] += lanes[l];
    else for (int l = 0; l < valid; l++) y[(long)l * j->out] = lanes[l];
}

// One weight row's element k broadcast against the 32 (or 16) rows' vector(s).
#define STEP(i) { __m512 a = _mm512_set1_ps(w##i[k]); c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0); \
                  if (two) c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1); }

/// Outputs n..n+5 of rows m..m+31 (or m..m+15 when !two), the twelve
/// accumulators named so that every compiler keeps them in registers.
/// `next` (when not null) is the following six weight rows, fetched into
/// cache a line per row every sixteen k while these are used.
AVX512 static inline __attribute__((always_inline))
void block6(const linear_job *j, int n, int m, const int two, const float *next, int nextRows) {
    const int in = j->in, mp = j->mp;
    const float *w0 = j->w + (long)n * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in, *w4 = w3 + in, *w5 = w4 + in;
    const float *xt = j->xt + m;
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int k = 0; k < in; k++) {
        if (next && (k & 15) == 0)
            for (int i = 0; i < nextRows; i++) _mm_prefetch((const char *)(next + (long)i * in + k), _MM_HINT_T0);
        const __m512 b0 = _mm512_loadu_ps(xt + (long)k * mp);
        const __m512 b1 = two ? _mm512_loadu_ps(xt + (long)k * mp + 16) : b0;
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5)
    }
    const int valid = j->rows - m < (two ? 32 : 16) ? j->rows - m : (two ? 32 : 16);
    put(j, n, m, valid, c00, c01); put(j, n + 1, m, valid, c10, c11); put(j, n + 2, m, valid, c20, c21);
    put(j, n + 3, m, valid, c30, c31); put(j, n + 4, m, valid, c40, c41); put(j, n + 5, m, valid, c50, c51);
}

/// One output feature n of rows m..m+31 (or +15): the tail of six.
AVX512 static void block1(const linear_job *j, int n, int m, const int two) {
    const int in = j->in, mp = j->mp;
    const float *w0 = j->w + (long)n * in, *xt = j->xt + m;
    __m512 c00 = _mm512_setzero_ps(), c01 = c00;
    for (int k = 0; k < in; k++) {
        const __m512 b0 = _mm512_loadu_ps(xt + (long)k * mp);
        const __m512 b1 = two ? _mm512_loadu_ps(xt + (long)k * mp + 16) : b0;
        STEP(0)
    }
    const int valid = j->rows - m < (two ? 32 : 16) ? j->rows - m : (two ? 32 : 16);
    put(j, n, m, valid, c00, c01);
}

AVX512 static void many_rows(void *ctx, int part, int parts) {
    linear_job *j = ctx;
    int blocks = (j->out + NR - 1) / NR;
    int lo = (int)((long)blocks * part / parts) * NR, hi = (int)((long)blocks * (part + 1) / parts) * NR;
    if (hi > j->out) hi = j->out;
    for (int n = lo; n < hi; n += NR) {
        int nr = hi - n < NR ? hi - n : NR;
        int nextRows = hi - (n + NR) < NR ? hi - (n + NR) : NR;
        const float *next = nextRows > 0 ? j->w + (long)(n + NR) * j->in : 0;
        for (int m = 0; m < j->mp; m += 32) {
            const float *pf = m == 0 ? next : 0;   // prefetch once per block of weights
            int two = j->mp - m >= 32;
            if (nr == NR) {
                if (two) block6(j, n, m, 1, pf, nextRows); else block6(j, n, m, 0, pf, nextRows);
            } else {
                for (int i = 0; i < nr; i++) block1(j, n + i, m, two);
            }
        }
    }
}

/// Parts worth a thread each: at least ~100k multiply-adds a part, since
/// handing a part to a helper costs about a microsecond.
static int parts_for(long work, int threads) {
    long p = work / 100000;
    if (p < 1) p = 1;
    return (int)(p < threads ? p : threads);
}

void herd_linear(float *y, const float *x, const float *w, int rows, int in, int out, int accumulate, int threads) {
    linear_job j = { y, x, w, 0, rows, in, out, 0, accumulate };
    int parts = parts_for((long)rows * in * out, threads < 1 ? 1 : threads);
    if (rows == 1) { herd_parallel(one_row, &j, parts); return; }
    int mp = (rows + 15) & ~15;
    float *xt = aligned_alloc(64, (size_t)in * mp * sizeof(float));
    if (!xt) abort();
    // Sixteen rows at a time: sixteen sequential reads, one vector written per k.
    for (int r0 = 0; r0 < mp; r0 += 16)
        for (int k = 0; k < in; k++) {
            float *col = xt + (long)k * mp;
            for (int r = r0; r < r0 + 16; r++) col[r] = r < rows ? x[(long)r * in + k] : 0;
        }
    j.xt = xt; j.mp = mp;
    herd_parallel(many_rows, &j, parts);
    free(xt);
}

#else
int herd_kernels_available(void) { return 0; }
void herd_linear(float *y, const float *x, const float *w, int rows, int in, int out, int accumulate, int threads) { abort(); }
#endif
