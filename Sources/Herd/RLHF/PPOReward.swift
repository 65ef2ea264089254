import Foundation

/// The reward PPO optimises in the Llama 2 paper (section 3.2.3): the
/// combined reward of the two reward models R_c (the safety reward if the
/// prompt is tagged unsafe or the safety reward is below 0.15, else the
/// helpfulness reward — as rejection sampling combines them), then
/// WHITEN(LOGIT(R_c)) over the batch, minus β·KL(π ‖ π₀) per token against
/// the frozen reference policy. The sequence's score lands on its last
/// token; the KL penalty on every token. Then generalized advantage
/// estimation with the value head's estimates.
public enum PPOReward {
    /// logit(p) = log(p / (1 − p)), with p kept inside (ε, 1 − ε).
    public static func logit(_ p: Double, epsilon: Double = 1e-6) -> Double {
        let q = min(max(p, epsilon), 1 - epsilon)
        return Foundation.log(q / (1 - q))
    }

    /// The combined reward of one answer (rewards as σ(score), in (0, 1)).
    public static func combined(helpful: Double, safety: Double, safetyPrompt: Bool) -> Double {
        RejectionSampling.combined(helpful: helpful, safety: safety, safetyPrompt: safetyPrompt)
    }

    /// Shift and scale to mean 0 and variance 1 over the batch (the
    /// population variance; a batch of equal values becomes all zeros).
    public static func whiten(_ x: [Double], epsilon: Double = 1e-8) -> [Double] {
        guard !x.isEmpty else { return [] }
        let mean = x.reduce(0, +) / Double(x.count)
        let variance = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(x.count)
        return x.map { ($0 - mean) / (variance + epsilon).squareRoot() }
    }

    /// The scores of a batch of answers: WHITEN(LOGIT(R_c)).
    public static func scores(combined: [Double]) -> [Double] { whiten(combined.map { logit($0) }) }

    /// Per-token rewards of one answer: −β·(log π(y_t) − log π₀(y_t)) at
    /// every token (the sampled-token estimate of KL(π ‖ π₀)), plus the
    /// answer's score at its last token.
    public static func tokenRewards(score: Double, logProbs: [Float], referenceLogProbs: [Float], beta: Double) -> [Double] {
        precondition(logProbs.count == referenceLogProbs.count && !logProbs.isEmpty)
        var r = zip(logProbs, referenceLogProbs).map { -beta * Double($0 - $1) }
        r[r.count - 1] += score
        return r
    }

    /// Generalized advantage estimation over one answer's tokens:
    /// δ_t = r_t + γ·V_{t+1} − V_t (V after the last token is 0), A_t =
    /// δ_t + γλ·A_{t+1}; the returns the value head learns are A_t + V_t.
    public static func advantages(rewards: [Double], values: [Double], gamma: Double = 1, lambda: Double = 0.95)
        -> (advantages: [Double], returns: [Double]) {
        precondition(rewards.count == values.count)
        var a = [Double](repeating: 0, count: rewards.count)
        var next = 0.0, nextValue = 0.0
        for t in stride(from: rewards.count - 1, through: 0, by: -1) {
            let delta = rewards[t] + gamma * nextValue - values[t]
            next = delta + gamma * lambda * next
            a[t] = next
            nextValue = values[t]
        }
        return (a, zip(a, values).map(+))
    }
}
