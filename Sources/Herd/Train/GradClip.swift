/// Global gradient-norm clipping (as torch.nn.utils.clip_grad_norm_). With
/// parallelism the sum of squares is reduced across ranks before the root,
/// so this takes the local sum separately from the scaling.
public enum GradClip {
    /// Σ g² over the buffer, in Double.
    public static func sumOfSquares(_ g: FloatBuffer) -> Double { sumOfSquares(g.base, count: g.count) }

    /// Σ g² in fp32 chunks added up in Double.
    public static func sumOfSquares(_ g: UnsafePointer<Float>, count: Int) -> Double {
        var total = 0.0
        let chunk = 4096
        var i = 0
        while i < count {
            let end = min(i + chunk, count)
            total += Double(FastMath.dot(g + i, g + i, count: end - i))
            i = end
        }
        return total
    }

    /// Scales the gradients so their norm is at most `maxNorm`; returns the
    /// norm before clipping.
    @discardableResult
    public static func clip(_ g: FloatBuffer, maxNorm: Double, globalSumOfSquares: Double? = nil) -> Double {
        clip(g.base, count: g.count, maxNorm: maxNorm, globalSumOfSquares: globalSumOfSquares ?? sumOfSquares(g))
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
