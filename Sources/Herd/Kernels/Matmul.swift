import COpenBLAS

/// Matrix products through OpenBLAS's `cblas_sgemm`. All matrices are
/// row-major; weights are stored `[out, in]` as in Meta's and PyTorch's
/// `nn.Linear`, so a linear layer is `y = x · Wᵀ`.
public enum Matmul {
    /// C[m, n] = alpha · op(A) · op(B) + beta · C, row-major with leading dimensions.
    @inline(__always)
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Linear forward: y[rows, out] = x[rows, in] · W[out, in]ᵀ (+ y when `accumulate`).
    public static func linearForward(
        y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
        rows: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = false
    ) {
        if rows == 1 {   // one token: a matrix-vector product
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(outFeatures), Int32(inFeatures), 1,
                        w, Int32(inFeatures), x, 1, accumulate ? 1 : 0, y, 1)
            return
        }
        gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
             a: x, lda: inFeatures, b: w, ldb: inFeatures,
             beta: accumulate ? 1 : 0, c: y, ldc: outFeatures)
    }

    /// Linear backward. dx[rows, in] = dy · W (overwrites, or adds when
    /// `accumulateDx`); dW[out, in] += dyᵀ · x (gradients always accumulate,
    /// so micro-batches can be summed).
    public static func linearBackward(
        dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>,
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
        rows: Int, inFeatures: Int, outFeatures: Int, accumulateDx: Bool = false
    ) {
        if let dx {
            gemm(transA: false, transB: false, m: rows, n: inFeatures, k: outFeatures,
                 a: dy, lda: outFeatures, b: w, ldb: inFeatures,
                 beta: accumulateDx ? 1 : 0, c: dx, ldc: inFeatures)
        }
        gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows,
             a: dy, lda: outFeatures, b: x, ldb: inFeatures,
             beta: 1, c: dw, ldc: inFeatures)
    }

    /// Number of threads OpenBLAS uses for one product.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }

    /// Which kernel family OpenBLAS selected at load time (e.g. "SkylakeX").
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }
}
