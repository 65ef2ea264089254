/// The gating half of Llama's SwiGLU feed-forward: g = silu(h1) ⊙ h3, where
/// h = x·[W1; W3]ᵀ comes out of one fused product as rows [h1 (F) | h3 (F)].
/// The surrounding products (x·[W1;W3]ᵀ and g·W2ᵀ) are plain linear layers; with
/// tensor parallelism each rank holds F/tp of the columns of W1 and W3 and the
/// matching rows of W2, so this elementwise step needs no communication.
public enum SwiGLU {
    public static func forward(g: UnsafeMutablePointer<Float>, h: UnsafePointer<Float>, rows: Int, hidden F: Int) {
        for r in 0..<rows {
            let h1 = h + r * 2 * F, h3 = h1 + F, gr = g + r * F
            for j in 0..<F {
                let a = h1[j]
                gr[j] = a / (1 + FastMath.exp(-a)) * h3[j]
            }
        }
    }

    /// dh1 = dg ⊙ h3 ⊙ σ(h1)(1 + h1(1 − σ(h1))); dh3 = dg ⊙ silu(h1).
    public static func backward(dh: UnsafeMutablePointer<Float>, dg: UnsafePointer<Float>, h: UnsafePointer<Float>, rows: Int, hidden F: Int) {
        for r in 0..<rows {
            let h1 = h + r * 2 * F, h3 = h1 + F, dgr = dg + r * F
            let dh1 = dh + r * 2 * F, dh3 = dh1 + F
            for j in 0..<F {
                let a = h1[j]
                let sig = 1 / (1 + FastMath.exp(-a))
                dh1[j] = dgr[j] * h3[j] * sig * (1 + a * (1 - sig))
                dh3[j] = dgr[j] * a * sig
            }
        }
    }
}
