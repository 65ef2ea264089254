// Decode-time attention over the KV cache: for each query row and head,
// scores against every cached key up to the row's position, a softmax,
// and the values' weighted sum. One (row, head) pair at a time per thread;
// the keys and values of one head are contiguous, so each pass streams.
#include "CKernels.h"
#include "pool.h"
#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))

/// FastMath.exp (Kernels/FastMath.swift) on sixteen lanes: the Cephes range
/// reduction and degree-5 polynomial, about 2 ulp.
AVX512 static inline __m512 exp16(__m512 x) {
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    __m512 t = _mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), magic);
    __m512 n = _mm512_sub_ps(t, magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    __m512i ni = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B400000));
    __m512 two = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(ni, _mm512_set1_epi32(127)), 23));
    return _mm512_mul_ps(e, two);
}

/// Lane i of the result is the sum of v[i]'s sixteen lanes: pairs of
/// vectors interleaved and added, then pairs of pairs, then 128-bit blocks
/// (45 operations for sixteen sums, against 8 each reduced alone).
AVX512 static inline __m512 sums16(const __m512 v[16]) {
    __m512 s[8], u[4];
    for (int i = 0; i < 8; i++)
        s[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(s[2 * i]), b = _mm512_castps_pd(s[2 * i + 1]);
        u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    // u[g]'s 128-bit block L holds the block-L sums of vectors 4g..4g+3.
    __m512 w01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xDD));
    __m512 w23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(w01, w23, 0x88), _mm512_shuffle_f32x4(w01, w23, 0xDD));
}

/// One query head's scores against keys 0..<n (head width hd, `chunks`
/// vectors of it, the last masked by `tm` when hd is not a multiple of 16).
AVX512 static inline __attribute__((always_inline))
void scores(float *s, const float *q, const float *K, int n, int hd, int chunks, __mmask16 tm, float scale) {
    __m512 qv[16];
    for (int c = 0; c < chunks; c++) qv[c] = _mm512_maskz_loadu_ps(c == chunks - 1 ? tm : 0xFFFF, q + 16 * c);
    const __m512 sc = _mm512_set1_ps(scale);
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 acc[16];
        for (int i = 0; i < 16; i++) {
            const float *k = K + (long)(j + i) * hd;
            acc[i] = _mm512_mul_ps(qv[0], _mm512_maskz_loadu_ps(chunks == 1 ? tm : 0xFFFF, k));
            for (int c = 1; c < chunks; c++)
                acc[i] = _mm512_fmadd_ps(qv[c], _mm512_maskz_loadu_ps(c == chunks - 1 ? tm : 0xFFFF, k + 16 * c), acc[i]);
        }
        _mm512_storeu_ps(s + j, _mm512_mul_ps(sums16(acc), sc));
    }
    for (; j < n; j++) {
        const float *k = K + (long)j * hd;
        __m512 acc = _mm512_mul_ps(qv[0], _mm512_maskz_loadu_ps(chunks == 1 ? tm : 0xFFFF, k));
        for (int c = 1; c < chunks; c++)
            acc = _mm512_fmadd_ps(qv[c], _mm512_maskz_loadu_ps(c == chunks - 1 ? tm : 0xFFFF, k + 16 * c), acc);
        s[j] = _mm512_reduce_add_ps(acc) * scale;
    }
}

/// o = inv · Σ_j s[j]·V[j] over j < n, the head's vectors in registers.
AVX512 static inline __attribute__((always_inline))
void weighted(float *o, const float *s, const float *V, int n, int hd, int chunks, __mmask16 tm, __m512 inv) {
    __m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps() };
    for (int j = 0; j < n; j++) {
        const __m512 p = _mm512_set1_ps(s[j]);
        const float *v = V + (long)j * hd;
        for (int c = 0; c < chunks; c++)
            acc[c] = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(c == chunks - 1 ? tm : 0xFFFF, v + 16 * c), acc[c]);
    }
    for (int c = 0; c < chunks; c++) _mm512_mask_storeu_ps(o + 16 * c, c == chunks - 1 ? tm : 0xFFFF, _mm512_mul_ps(acc[c], inv));
}

typedef struct {
    float *out; int outStride; const float *q; int qStride;
    const float *keys, *values; const long *cacheOffset; const int *position;
    int rows, heads, kvHeads, headDim; long headStride; float *scratch; int maxLen;
} attend_job;

AVX512 static void attend_part(void *ctx, int part, int parts) {
    const attend_job *a = ctx;
    const int hd = a->headDim, group = a->heads / a->kvHeads;
    const float scale = 1.0f / sqrtf((float)hd);
    float *s = a->scratch + (long)part * a->maxLen;
    const int items = a->rows * a->heads;
    const int lo = (int)((long)items * part / parts), hi = (int)((long)items * (part + 1) / parts);
    const int tail = hd % 16;
    const __mmask16 tm = (__mmask16)((1u << tail) - 1);
    for (int it = lo; it < hi; it++) {
        const int r = it / a->heads, h = it % a->heads, t = a->position[r];
        const float *q = a->q + (long)r * a->qStride + (long)h * hd;
        const long base = a->cacheOffset[r] + (long)(h / group) * a->headStride;
        const float *K = a->keys + base, *V = a->values + base;
        // Scores (head widths of up to 256 floats with every chunk in registers).
        const int chunks = (hd + 15) / 16;
        const __mmask16 last = tail ? tm : (__mmask16)0xFFFF;
        switch (chunks) {
        case 1: scores(s, q, K, t + 1, hd, 1, last, scale); break;
        case 2: scores(s, q, K, t + 1, hd, 2, last, scale); break;
        case 3: scores(s, q, K, t + 1, hd, 3, last, scale); break;
        case 4: scores(s, q, K, t + 1, hd, 4, last, scale); break;
        case 8: scores(s, q, K, t + 1, hd, 8, last, scale); break;
        default: scores(s, q, K, t + 1, hd, chunks, last, scale); break;
        }
        // Softmax.
        const int n = t + 1;
        __m512 mx = _mm512_set1_ps(-INFINITY);
        int j = 0;
        for (; j + 16 <= n; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + j));
        float m = _mm512_reduce_max_ps(mx);
        for (; j < n; j++) m = s[j] > m ? s[j] : m;
        __m512 sum = _mm512_setzero_ps(), shift = _mm512_set1_ps(m);
        for (j = 0; j + 16 <= n; j += 16) {
            __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j), shift));
            _mm512_storeu_ps(s + j, e);
            sum = _mm512_add_ps(sum, e);
        }
        if (j < n) {
            __mmask16 rm = (__mmask16)((1u << (n - j)) - 1);
            __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(rm, s + j), shift));
            e = _mm512_maskz_mov_ps(rm, e);
            _mm512_mask_storeu_ps(s + j, rm, e);
            sum = _mm512_add_ps(sum, e);
        }
        const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
        // Weighted sum of the values, up to four vectors of the head at a time.
        float *o = a->out + (long)r * a->outStride + (long)h * hd;
        for (int c0 = 0; c0 < hd; c0 += 64) {
            const int left = hd - c0, cs = left >= 64 ? 4 : (left + 15) / 16;
            const __mmask16 lm = left >= 64 || left % 16 == 0 ? (__mmask16)0xFFFF : (__mmask16)((1u << (left % 16)) - 1);
            switch (cs) {
            case 1: weighted(o + c0, s, V + c0, n, hd, 1, lm, inv); break;
            case 2: weighted(o + c0, s, V + c0, n, hd, 2, lm, inv); break;
            case 3: weighted(o + c0, s, V + c0, n, hd, 3, lm, inv); break;
            default: weighted(o + c0, s, V + c0, n, hd, 4, lm, inv); break;
            }
        }
    }
}

void herd_attend(float *out, int outStride, const float *q, int qStride,
                 const float *keys, const float *values, const long *cacheOffset, const int *position,
                 int rows, int heads, int kvHeads, int headDim, long headStride,
                 float *scratch, int maxLen, int threads) {
    attend_job a = { out, outStride, q, qStride, keys, values, cacheOffset, position,
                     rows, heads, kvHeads, headDim, headStride, scratch, maxLen };
    int items = rows * heads;
    int parts = threads < items ? threads : items;
    herd_parallel(attend_part, &a, parts < 1 ? 1 : parts);
}

#else
#include <stdlib.h>
void herd_attend(float *out, int outStride, const float *q, int qStride,
                 const float *keys, const float *values, const long *cacheOffset, const int *position,
                 int rows, int heads, int kvHeads, int headDim, long headStride,
                 float *scratch, int maxLen, int threads) { abort(); }
#endif
