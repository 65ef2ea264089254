// linear.c's kernels for one instruction set (simd.h's macros): included
// once per set. `linear_job` and its fields are linear.c's.

/// Σ a[k]·b[k] over n floats, four accumulators of W lanes.
ATTR static float SUFFIX(dot)(const float *a, const float *b, int n) {
    vf s0 = VZERO(), s1 = s0, s2 = s0, s3 = s0;
    int k = 0;
    for (; k + 4 * W <= n; k += 4 * W) {
        s0 = VFMA(VLOAD(a + k), VLOAD(b + k), s0);
        s1 = VFMA(VLOAD(a + k + W), VLOAD(b + k + W), s1);
        s2 = VFMA(VLOAD(a + k + 2 * W), VLOAD(b + k + 2 * W), s2);
        s3 = VFMA(VLOAD(a + k + 3 * W), VLOAD(b + k + 3 * W), s3);
    }
    for (; k + W <= n; k += W) s0 = VFMA(VLOAD(a + k), VLOAD(b + k), s0);
    if (k < n) {
        const vmask m = VMASK(n - k);
        s1 = VFMA(VLOADM(a + k, m), VLOADM(b + k, m), s1);
    }
    return VHSUM(VADD(VADD(s0, s1), VADD(s2, s3)));
}

ATTR static void SUFFIX(one_row)(void *ctx, int part, int parts) {
    linear_job *j = ctx;
    int lo = (int)((long)j->out * part / parts), hi = (int)((long)j->out * (part + 1) / parts);
    for (int n = lo; n < hi; n++) {
        float v = SUFFIX(dot)(j->w + (long)n * j->in, j->x, j->in);
        j->y[n] = j->accumulate ? j->y[n] + v : v;
    }
}

/// Stores (or adds) one output feature's lanes into y's column n, rows m..
ATTR static inline void SUFFIX(put)(const linear_job *j, int n, int m, int valid, vf c0, vf c1) {
    float lanes[2 * W];
    VSTORE(lanes, c0);
    VSTORE(lanes + W, c1);
    float *y = j->y + (long)m * j->out + n;
    if (j->accumulate) for (int l = 0; l < valid; l++) y[(long)l * j->out] += lanes[l];
    else for (int l = 0; l < valid; l++) y[(long)l * j->out] = lanes[l];
}

// One weight row's element k broadcast against the 2W (or W) rows' vector(s).
#define STEP(i) { vf a = VSET1(w##i[k]); c##i##0 = VFMA(a, b0, c##i##0); \
                  if (two) c##i##1 = VFMA(a, b1, c##i##1); }

/// Outputs n..n+5 of rows m..m+2W−1 (or m..m+W−1 when !two), the twelve
/// accumulators named so that every compiler keeps them in registers.
/// `next` (when not null) is the following six weight rows, fetched into
/// cache a line per row every sixteen k while these are used.
ATTR static inline __attribute__((always_inline))
void SUFFIX(block6)(const linear_job *j, int n, int m, const int two, const float *next, int nextRows) {
    const int in = j->in, mp = j->mp;
    const float *w0 = j->w + (long)n * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in, *w4 = w3 + in, *w5 = w4 + in;
    const float *xt = j->xt + m;
    vf c00 = VZERO(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
       c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int k = 0; k < in; k++) {
        if (next && (k & 15) == 0)
            for (int i = 0; i < nextRows; i++) _mm_prefetch((const char *)(next + (long)i * in + k), _MM_HINT_T0);
        const vf b0 = VLOAD(xt + (long)k * mp);
        const vf b1 = two ? VLOAD(xt + (long)k * mp + W) : b0;
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5)
    }
    const int valid = j->rows - m < (two ? 2 * W : W) ? j->rows - m : (two ? 2 * W : W);
    SUFFIX(put)(j, n, m, valid, c00, c01); SUFFIX(put)(j, n + 1, m, valid, c10, c11);
    SUFFIX(put)(j, n + 2, m, valid, c20, c21); SUFFIX(put)(j, n + 3, m, valid, c30, c31);
    SUFFIX(put)(j, n + 4, m, valid, c40, c41); SUFFIX(put)(j, n + 5, m, valid, c50, c51);
}

/// One output feature n of rows m..m+2W−1 (or +W−1): the tail of six.
ATTR static void SUFFIX(block1)(const linear_job *j, int n, int m, const int two) {
    const int in = j->in, mp = j->mp;
    const float *w0 = j->w + (long)n * in, *xt = j->xt + m;
    vf c00 = VZERO(), c01 = c00;
    for (int k = 0; k < in; k++) {
        const vf b0 = VLOAD(xt + (long)k * mp);
        const vf b1 = two ? VLOAD(xt + (long)k * mp + W) : b0;
        STEP(0)
    }
    const int valid = j->rows - m < (two ? 2 * W : W) ? j->rows - m : (two ? 2 * W : W);
    SUFFIX(put)(j, n, m, valid, c00, c01);
}
#undef STEP

ATTR static void SUFFIX(many_rows)(void *ctx, int part, int parts) {
    linear_job *j = ctx;
    int blocks = (j->out + NR - 1) / NR;
    int lo = (int)((long)blocks * part / parts) * NR, hi = (int)((long)blocks * (part + 1) / parts) * NR;
    if (hi > j->out) hi = j->out;
    for (int n = lo; n < hi; n += NR) {
        int nr = hi - n < NR ? hi - n : NR;
        int nextRows = hi - (n + NR) < NR ? hi - (n + NR) : NR;
        const float *next = nextRows > 0 ? j->w + (long)(n + NR) * j->in : 0;
        for (int m = 0; m < j->mp; m += 2 * W) {
            const float *pf = m == 0 ? next : 0;   // prefetch once per block of weights
            int two = j->mp - m >= 2 * W;
            if (nr == NR) {
                if (two) SUFFIX(block6)(j, n, m, 1, pf, nextRows); else SUFFIX(block6)(j, n, m, 0, pf, nextRows);
            } else {
                for (int i = 0; i < nr; i++) SUFFIX(block1)(j, n + i, m, two);
            }
        }
    }
}
