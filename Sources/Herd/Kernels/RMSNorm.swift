/// RMSNorm (Zhang & Sennrich 2019) as in Llama: y = x / sqrt(mean(x²) + eps) · g.
/// No mean subtraction, no bias. Llama 2 uses eps = 1e-5.
public enum RMSNorm {
    /// Writes y[rows, dim] and the reciprocal RMS per row, which backward reuses.
    public static func forward(
        y: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
        x: UnsafePointer<Float>, gain: UnsafePointer<Float>,
        rows: Int, dim: Int, eps: Float
    ) {
        for r in 0..<rows {
            let xr = x + r * dim, yr = y + r * dim
            let ss = FastMath.dot(xr, xr, count: dim)
            let s = 1 / (ss / Float(dim) + eps).squareRoot()
            rstd[r] = s
            for j in 0..<dim { yr[j] = xr[j] * s * gain[j] }
        }
    }

    /// With n = x·rstd: dGain += Σ_rows dy·n; dx = rstd · (dy·g − n · mean(dy·g·n)).
    /// dx is added to (residual streams accumulate their gradient).
    public static func backward(
        dx: UnsafeMutablePointer<Float>, dGain: UnsafeMutablePointer<Float>,
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, gain: UnsafePointer<Float>,
        rstd: UnsafePointer<Float>, rows: Int, dim: Int
    ) {
        for r in 0..<rows {
            let xr = x + r * dim, dyr = dy + r * dim, dxr = dx + r * dim
            let s = rstd[r]
            for j in 0..<dim { dGain[j] += dyr[j] * xr[j] * s }
            // mean(dy·g·n) = rstd · Σ dy·g·x / dim
            let mean = FastMath.dot3(dyr, gain, xr, count: dim) * s / Float(dim)
            for j in 0..<dim {
                let n = xr[j] * s
                dxr[j] += s * (dyr[j] * gain[j] - n * mean)
            }
        }
    }
}
