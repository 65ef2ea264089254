/// Global gradient-norm clipping (as torch.nn.utils.clip_grad_norm_). With
/// parallelism the sum of squares is reduced across ranks before the root,
/// so this takes the local sum separately from the scaling.
public enum GradClip {
    /// Σ g² over the buffer, in Double.
    public static func sumOfSquares(_ g: FloatBuffer) -> Double {
        var total = 0.0
        let chunk = 4096
        var i = 0
        while i < g.count {
            let end = min(i + chunk, g.count)
            var acc: Float = 0
            for j in i..<end { acc += g[j] * g[j] }
            total += Double(acc)
            i = end
        }
        return total
    }

    /// Scales the gradients so their norm is at most `maxNorm`; returns the
    /// norm before clipping.
    @discardableResult
    public static func clip(_ g: FloatBuffer, maxNorm: Double, globalSumOfSquares: Double? = nil) -> Double {
        let norm = (globalSumOfSquares ?? sumOfSquares(g)).squareRoot()
        if maxNorm > 0, norm > maxNorm {
            let s = Float(maxNorm / (norm + 1e-6))
            for i in 0..<g.count { g[i] *= s }
        }
        return norm
    }
}
