import Foundation

/// One sampled answer of a PPO iteration and everything PPO computes on it.
/// Token k of the answer is predicted at row `promptCount − 1 + k` of its
/// sequence (prompt + answer): log-probabilities, values and advantages are
/// one per answer token, in that order.
struct Rollout {
    /// Its place in the iteration's batch (0..<rollouts), which fixes its
    /// prompt and its sampling stream whatever the layout.
    var index: Int
    var prompt: PromptRecord
    var promptTokens: [TokenID]
    var answer: [TokenID] = []
    var text = ""
    /// log π_old and log π₀ of each answer token, and the value estimates.
    var logProbs: [Float] = []
    var referenceLogProbs: [Float] = []
    var values: [Float] = []
    /// The policy's entropy summed over the answer's positions (nats).
    var entropy = 0.0
    var advantages: [Float] = []
    var returns: [Float] = []

    var sequence: [TokenID] { promptTokens + answer }
    /// Σ_t log π_old − log π₀: the sampled estimate of KL(π ‖ π₀) for this answer.
    var kl: Double { zip(logProbs, referenceLogProbs).reduce(0) { $0 + Double($1.0 - $1.1) } }
}

/// Rollouts padded into one [batch, seqLen] block for a forward pass:
/// inputs are each sequence but its last token, targets the next token on
/// the answer's rows and ignored elsewhere (the prompt, the padding). A
/// padded tail does not change earlier rows: attention is causal. Under
/// sequence parallelism the length is padded to a multiple of the tensor
/// degree, so that the rows divide among the tensor ranks.
struct RolloutBatch {
    let tokens: [TokenID]
    let targets: [TokenID]
    let batch: Int, seqLen: Int
    /// For each rollout, the rows of its answer tokens.
    let rows: [Range<Int>]

    init(_ rollouts: [Rollout], lengthMultiple: Int = 1) {
        batch = rollouts.count
        let longest = max(1, rollouts.map { $0.promptTokens.count + $0.answer.count - 1 }.max() ?? 1)
        seqLen = (longest + lengthMultiple - 1) / lengthMultiple * lengthMultiple
        var tokens = [TokenID](repeating: 0, count: batch * seqLen)
        var targets = [TokenID](repeating: CrossEntropy.ignoreIndex, count: batch * seqLen)
        var rows: [Range<Int>] = []
        for (b, r) in rollouts.enumerated() {
            let s = r.sequence, base = b * seqLen
            for t in 0..<(s.count - 1) { tokens[base + t] = s[t] }
            let first = base + r.promptTokens.count - 1
            for k in 0..<r.answer.count { targets[first + k] = r.answer[k] }
            rows.append(first..<(first + r.answer.count))
        }
        self.tokens = tokens
        self.targets = targets
        self.rows = rows
    }

    func activations(_ model: Llama, checkpoint: ActivationCheckpoint) -> Activations {
        model.makeActivations(batch: batch, seqLen: seqLen, checkpoint: checkpoint)
    }

    /// Per rollout, the values of `perRow` on its answer's rows.
    func split<T>(_ perRow: (Int) -> T) -> [[T]] { rows.map { $0.map(perRow) } }

    /// Values of every answer token, rollout after rollout, laid out on
    /// their rows (0 elsewhere).
    func scatter(flat: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: batch * seqLen)
        var i = 0
        for r in rows { for row in r { out[row] = flat[i]; i += 1 } }
        precondition(i == flat.count)
        return out
    }
}

