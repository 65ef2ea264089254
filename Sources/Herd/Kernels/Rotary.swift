import Foundation

/// Rotary position embeddings in Meta's convention: within each head, the
/// pairs (x[2i], x[2i+1]) are rotated by the angle pos · θ^(−2i/headDim),
/// θ = 10000. Hugging Face's checkpoints store w_q and w_k with their rows
/// permuted so that the pairs are (x[i], x[i + headDim/2]) instead ("rotate
/// half"); importing or exporting those weights must apply that permutation.
public struct RotaryTable: Sendable {
    public let headDim: Int
    public let maxSeq: Int
    /// cos and sin, [maxSeq, headDim/2].
    public let cos: [Float]
    public let sin: [Float]

    public init(headDim: Int, maxSeq: Int, theta: Double = 10000) {
        precondition(headDim % 2 == 0, "rotary embeddings need an even head dimension")
        self.headDim = headDim
        self.maxSeq = maxSeq
        let half = headDim / 2
        var c = [Float](repeating: 0, count: maxSeq * half)
        var s = c
        for p in 0..<maxSeq {
            for i in 0..<half {
                let freq = 1.0 / Foundation.pow(theta, Double(2 * i) / Double(headDim))
                let angle = Double(p) * freq
                c[p * half + i] = Float(Foundation.cos(angle))
                s[p * half + i] = Float(Foundation.sin(angle))
            }
        }
        cos = c
        sin = s
    }
}

public enum Rotary {
    /// Rotates `heads` consecutive heads of each row in place. `x` points at the
    /// first head of row 0; rows are `ld` floats apart; row r has position
    /// startPosition + r % seqLen (generation passes seqLen 1 and the position).
    /// `inverse` rotates by −angle, which is the backward pass (the map is orthogonal).
    public static func apply(
        _ x: UnsafeMutablePointer<Float>, table: RotaryTable,
        rows: Int, seqLen: Int, heads: Int, ld: Int, inverse: Bool = false, startPosition: Int = 0
    ) {
        let half = table.headDim / 2
        let sign: Float = inverse ? -1 : 1
        table.cos.withUnsafeBufferPointer { cosp in
            table.sin.withUnsafeBufferPointer { sinp in
                for r in 0..<rows {
                    let pos = startPosition + r % seqLen
                    let c = cosp.baseAddress! + pos * half
                    let s = sinp.baseAddress! + pos * half
                    for h in 0..<heads {
                        let v = x + r * ld + h * table.headDim
                        for i in 0..<half {
                            let a = v[2 * i], b = v[2 * i + 1]
                            let si = sign * s[i]
                            v[2 * i] = a * c[i] - b * si
                            v[2 * i + 1] = a * si + b * c[i]
                        }
                    }
                }
            }
        }
    }
}
