import Foundation

/// PPO's clipped surrogate objective (Schulman et al. 2017) over a batch
/// of tokens, forward beside backward. With the ratio ρ_t = exp(log π(y_t)
/// − log π_old(y_t)) and advantage A_t, the loss is
///     L = −(1/N) Σ_t min(ρ_t·A_t, clip(ρ_t, 1 − ε, 1 + ε)·A_t)
/// and its gradient with respect to log π(y_t) is −ρ_t·A_t / N where the
/// unclipped term is the smaller (or they tie), 0 where the clipped one is
/// (the clip is flat there). The gradient then flows into the logits as
/// any log-probability's does: ∂ log π(y_t)/∂ z = onehot(y_t) − softmax(z).
public enum ClippedSurrogate {
    public struct Result: Sendable {
        public var loss: Double
        /// ∂L/∂ log π(y_t), one per token.
        public var gradLogProbs: [Float]
        /// The share of tokens whose ratio left [1 − ε, 1 + ε].
        public var clipFraction: Double
    }

    public static func forwardBackward(logProbs: [Float], oldLogProbs: [Float], advantages: [Float], clip: Float = 0.2) -> Result {
        precondition(logProbs.count == oldLogProbs.count && logProbs.count == advantages.count && !logProbs.isEmpty)
        let n = Float(logProbs.count)
        var loss = 0.0, clipped = 0
        var grad = [Float](repeating: 0, count: logProbs.count)
        for t in 0..<logProbs.count {
            let ratio = Foundation.exp(logProbs[t] - oldLogProbs[t]), a = advantages[t]
            let bounded = min(max(ratio, 1 - clip), 1 + clip)
            if bounded != ratio { clipped += 1 }
            let unclippedTerm = ratio * a, clippedTerm = bounded * a
            if unclippedTerm <= clippedTerm {
                loss -= Double(unclippedTerm)
                grad[t] = -ratio * a / n
            } else {
                loss -= Double(clippedTerm)   // flat in log π: no gradient
            }
        }
        return Result(loss: loss / Double(n), gradLogProbs: grad, clipFraction: Double(clipped) / Double(n))
    }

    /// The value head's loss, ½·mean((V − R)²), and its gradient in V.
    public static func valueLoss(values: [Float], returns: [Float]) -> (loss: Double, gradValues: [Float]) {
        precondition(values.count == returns.count && !values.isEmpty)
        let n = Float(values.count)
        let diff = zip(values, returns).map { $0 - $1 }
        return (Double(diff.reduce(0) { $0 + $1 * $1 }) / Double(2 * n), diff.map { $0 / n })
    }
}
