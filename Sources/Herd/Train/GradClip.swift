/// Global gradient-norm clipping (as torch.nn.utils.clip_grad_norm_). With
/// parallelism the sum of squares is reduced across ranks before the root,
/// so this takes the local sum separately from the scaling.
public enum GradClip {
    /// Scales the gradients so their norm is at most `maxNorm`; returns the
    /// norm before clipping.
    @discardableResult
    public static func clip(_ g: FloatBuffer, maxNorm: Double, globalSumOfSquares: Double? = nil) -> Double {
        clip(g.base, count: g.count, maxNorm: maxNorm, globalSumOfSquares: globalSumOfSquares ?? FastMath.sumOfSquares(g.base, count: g.count))
    }

    /// Scales `count` gradients by the factor the global norm calls for.
    @discardableResult
    public static func clip(_ g: UnsafeMutablePointer<Float>, count: Int, maxNorm: Double, globalSumOfSquares: Double) -> Double {
        let norm = globalSumOfSquares.squareRoot()
        if maxNorm > 0, norm > maxNorm {
            let s = Float(maxNorm / (norm + 1e-6))
            for i in 0..<count { g[i] *= s }
        }
        return norm
    }
}
