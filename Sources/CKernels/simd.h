// The vector operations the kernels are written in, for one instruction
// set at a time: linear.c and attention.c include their bodies once with
// SIMD_AVX512 and once with SIMD_AVX2 defined, and each inclusion defines
// functions with its own suffix. Re-including this header redefines every
// macro for the level now defined.
#undef ATTR
#undef SUFFIX
#undef W
#undef vf
#undef vmask
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VFMA
#undef VFNMA
#undef VADD
#undef VSUB
#undef VMUL
#undef VMAX
#undef VMIN
#undef VMASK
#undef VLOADM
#undef VSTOREM
#undef VHSUM
#undef VHMAX
#undef VPOW2
#undef VSUMS

#if defined(SIMD_AVX512)
#define ATTR __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))
#define SUFFIX(name) name##_avx512
#define W 16
#define vf __m512
#define vmask __mmask16
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VSET1(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VFNMA(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSUB(a, b) _mm512_sub_ps(a, b)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define VMIN(a, b) _mm512_min_ps(a, b)
/// Lanes 0..<n (n ≤ 16) set.
#define VMASK(n) ((__mmask16)((1u << (n)) - 1))
#define VLOADM(p, m) _mm512_maskz_loadu_ps(m, p)
#define VSTOREM(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define VHSUM(v) _mm512_reduce_add_ps(v)
#define VHMAX(v) _mm512_reduce_max_ps(v)
/// 2^n for integral n held in the float t's low mantissa bits (t = n + 1.5·2²³).
#define VPOW2(t) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32( \
    _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B400000)), _mm512_set1_epi32(127)), 23))

/// Lane i of the result is the sum of v[i]'s sixteen lanes: pairs of
/// vectors interleaved and added, then pairs of pairs, then 128-bit blocks
/// (45 operations for sixteen sums, against 8 each reduced alone).
ATTR static inline __m512 sums_avx512(const __m512 v[16]) {
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
#define VSUMS(v) sums_avx512(v)

#elif defined(SIMD_AVX2)
#define ATTR __attribute__((target("avx2,fma")))
#define SUFFIX(name) name##_avx2
#define W 8
#define vf __m256
#define vmask __m256i
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VSET1(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VFNMA(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VMIN(a, b) _mm256_min_ps(a, b)
#define VMASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define VLOADM(p, m) _mm256_maskload_ps(p, m)
#define VSTOREM(p, m, v) _mm256_maskstore_ps(p, m, v)
ATTR static inline float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
ATTR static inline float hmax_avx2(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}
#define VHSUM(v) hsum_avx2(v)
#define VHMAX(v) hmax_avx2(v)
#define VPOW2(t) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32( \
    _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B400000)), _mm256_set1_epi32(127)), 23))

/// Lane i of the result is the sum of v[i]'s eight lanes (horizontal adds,
/// then the two 128-bit halves).
ATTR static inline __m256 sums_avx2(const __m256 v[8]) {
    __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}
#define VSUMS(v) sums_avx2(v)
#endif
