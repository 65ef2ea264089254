// attention.c's kernel for one instruction set (simd.h's macros): included
// once per set. `attend_job` is attention.c's.

/// FastMath.exp (Kernels/FastMath.swift) on W lanes: the Cephes range
/// reduction and degree-5 polynomial, about 2 ulp.
ATTR static inline vf SUFFIX(vexp)(vf x) {
    const vf magic = VSET1(12582912.0f);
    vf xc = VMIN(VMAX(x, VSET1(-87.3f)), VSET1(88.3f));
    vf t = VFMA(xc, VSET1(1.44269504088896341f), magic);
    vf n = VSUB(t, magic);
    vf r = VFNMA(n, VSET1(0.693359375f), xc);
    r = VFNMA(n, VSET1(-2.12194440e-4f), r);
    vf p = VSET1(1.9875691500e-4f);
    p = VFMA(p, r, VSET1(1.3981999507e-3f));
    p = VFMA(p, r, VSET1(8.3334519073e-3f));
    p = VFMA(p, r, VSET1(4.1665795894e-2f));
    p = VFMA(p, r, VSET1(1.6666665459e-1f));
    p = VFMA(p, r, VSET1(5.0000001201e-1f));
    vf e = VADD(VFMA(p, VMUL(r, r), r), VSET1(1.0f));
    return VMUL(e, VPOW2(t));
}

/// One query head's scores against keys 0..<n: the head is `chunks`
/// vectors, the last of them `lastm` lanes wide. W keys at a time, their
/// lane sums taken together.
ATTR static inline __attribute__((always_inline))
void SUFFIX(scores)(float *s, const float *q, const float *K, int n, int hd, int chunks, vmask lastm, float scale) {
    vf qv[256 / W];
    for (int c = 0; c < chunks - 1; c++) qv[c] = VLOAD(q + W * c);
    qv[chunks - 1] = VLOADM(q + W * (chunks - 1), lastm);
    const vf sc = VSET1(scale);
    int j = 0;
    for (; j + W <= n; j += W) {
        vf acc[W];
        for (int i = 0; i < W; i++) {
            const float *k = K + (long)(j + i) * hd;
            acc[i] = VMUL(qv[chunks - 1], VLOADM(k + W * (chunks - 1), lastm));
            for (int c = 0; c < chunks - 1; c++) acc[i] = VFMA(qv[c], VLOAD(k + W * c), acc[i]);
        }
        VSTORE(s + j, VMUL(VSUMS(acc), sc));
    }
    for (; j < n; j++) {
        const float *k = K + (long)j * hd;
        vf acc = VMUL(qv[chunks - 1], VLOADM(k + W * (chunks - 1), lastm));
        for (int c = 0; c < chunks - 1; c++) acc = VFMA(qv[c], VLOAD(k + W * c), acc);
        s[j] = VHSUM(acc) * scale;
    }
}

/// o = inv · Σ_j s[j]·V[j] over j < n for `chunks` (≤ 4) vectors of the
/// head, the last `lastm` lanes wide; the sums stay in registers.
ATTR static inline __attribute__((always_inline))
void SUFFIX(weighted)(float *o, const float *s, const float *V, int n, int hd, int chunks, vmask lastm, vf inv) {
    vf acc[4] = { VZERO(), VZERO(), VZERO(), VZERO() };
    for (int j = 0; j < n; j++) {
        const vf p = VSET1(s[j]);
        const float *v = V + (long)j * hd;
        for (int c = 0; c < chunks - 1; c++) acc[c] = VFMA(p, VLOAD(v + W * c), acc[c]);
        acc[chunks - 1] = VFMA(p, VLOADM(v + W * (chunks - 1), lastm), acc[chunks - 1]);
    }
    for (int c = 0; c < chunks - 1; c++) VSTORE(o + W * c, VMUL(acc[c], inv));
    VSTOREM(o + W * (chunks - 1), lastm, VMUL(acc[chunks - 1], inv));
}

ATTR static void SUFFIX(attend_part)(void *ctx, int part, int parts) {
    const attend_job *a = ctx;
    const int hd = a->headDim, group = a->heads / a->kvHeads;
    const float scale = 1.0f / sqrtf((float)hd);
    float *s = a->scratch + (long)part * a->maxLen;
    const int items = a->rows * a->heads;
    const int lo = (int)((long)items * part / parts), hi = (int)((long)items * (part + 1) / parts);
    const int chunks = (hd + W - 1) / W;
    const vmask lastm = VMASK(hd - W * (chunks - 1));
    for (int it = lo; it < hi; it++) {
        const int r = it / a->heads, h = it % a->heads, n = a->position[r] + 1;
        const float *q = a->q + (long)r * a->qStride + (long)h * hd;
        const long base = a->cacheOffset[r] + (long)(h / group) * a->headStride;
        const float *K = a->keys + base, *V = a->values + base;
        // Scores; the common head widths with their loops unrolled.
        switch (chunks) {
        case 1: SUFFIX(scores)(s, q, K, n, hd, 1, lastm, scale); break;
        case 2: SUFFIX(scores)(s, q, K, n, hd, 2, lastm, scale); break;
        case 3: SUFFIX(scores)(s, q, K, n, hd, 3, lastm, scale); break;
        case 4: SUFFIX(scores)(s, q, K, n, hd, 4, lastm, scale); break;
        case 6: SUFFIX(scores)(s, q, K, n, hd, 6, lastm, scale); break;
        case 8: SUFFIX(scores)(s, q, K, n, hd, 8, lastm, scale); break;
        default: SUFFIX(scores)(s, q, K, n, hd, chunks, lastm, scale); break;
        }
        // Softmax.
        vf mx = VSET1(-INFINITY);
        int j = 0;
        for (; j + W <= n; j += W) mx = VMAX(mx, VLOAD(s + j));
        float m = VHMAX(mx);
        for (; j < n; j++) m = s[j] > m ? s[j] : m;
        vf sum = VZERO();
        const vf shift = VSET1(m);
        for (j = 0; j + W <= n; j += W) {
            vf e = SUFFIX(vexp)(VSUB(VLOAD(s + j), shift));
            VSTORE(s + j, e);
            sum = VADD(sum, e);
        }
        float total = VHSUM(sum);
        if (j < n) {
            const vmask rm = VMASK(n - j);
            VSTOREM(s + j, rm, SUFFIX(vexp)(VSUB(VLOADM(s + j, rm), shift)));
            for (; j < n; j++) total += s[j];
        }
        const vf inv = VSET1(1.0f / total);
        // Weighted sum of the values, up to four vectors of the head at a time.
        float *o = a->out + (long)r * a->outStride + (long)h * hd;
        for (int c0 = 0; c0 < hd; c0 += 4 * W) {
            const int left = hd - c0, cs = left >= 4 * W ? 4 : (left + W - 1) / W;
            const vmask lm = VMASK(left >= 4 * W ? W : left - W * (cs - 1));
            switch (cs) {
            case 1: SUFFIX(weighted)(o + c0, s, V + c0, n, hd, 1, lm, inv); break;
            case 2: SUFFIX(weighted)(o + c0, s, V + c0, n, hd, 2, lm, inv); break;
            case 3: SUFFIX(weighted)(o + c0, s, V + c0, n, hd, 3, lm, inv); break;
            default: SUFFIX(weighted)(o + c0, s, V + c0, n, hd, 4, lm, inv); break;
            }
        }
    }
}
