import Foundation

extension Llama {
    /// log π(target_t | tokens ≤ t) at every row (0 where the target is
    /// ignored): the per-token log-probabilities PPO's ratio and the KL
    /// penalty are made of. Forward only; `acts` keeps the activations for
    /// `backwardLogProbs`. Under tensor parallelism the vocabulary is split:
    /// each row's maximum, sum of exponentials and target logit are summed
    /// over the tensor group (Megatron's vocab-parallel cross-entropy, one
    /// value per row), and the logits are never gathered.
    public func tokenLogProbs(tokens: [TokenID], targets: [TokenID], acts: Activations) -> [Float] {
        precondition(!config.scalarHead, "per-token log-probabilities of a language model")
        tokens.withUnsafeBufferPointer { forwardLogits(tokens: $0.baseAddress!, acts: acts) }
        let v = shard.vocab
        guard parallel else {
            return (0..<acts.rows).map { r in
                guard targets[r] >= 0 else { return 0 }
                let (loss, _) = CrossEntropy.forward(logits: acts.logits.base + r * v, targets: [targets[r]], rows: 1, vocab: v)
                return Float(-loss)
            }
        }
        let (maxes, sums, picked) = vocabRowStats(acts, targets: targets)
        return (0..<acts.rows).map { r in targets[r] >= 0 ? picked[r] - maxes[r] - Foundation.log(sums[r]) : 0 }
    }

    /// Per row of `acts.logits`: the maximum over the whole vocabulary,
    /// Σ exp(logit − max), and the target's logit (0 for ignored rows) —
    /// each summed or maximised over the tensor group.
    private func vocabRowStats(_ acts: Activations, targets: [TokenID]) -> (maxes: [Float], sums: [Float], picked: [Float]) {
        let rows = acts.rows, v = shard.vocab, start = shard.vocabStart
        var maxes = (0..<rows).map { FastMath.max(acts.logits.base + $0 * v, count: v) }
        tp.allReduce(&maxes, count: rows, op: .max)
        var sumsAndPicked = [Float](repeating: 0, count: 2 * rows)
        for r in 0..<rows {
            let row = acts.logits.base + r * v
            var s: Float = 0
            for j in 0..<v { s += FastMath.exp(row[j] - maxes[r]) }
            sumsAndPicked[r] = s
            let t = Int(targets[r]) - start
            if targets[r] >= 0 && t >= 0 && t < v { sumsAndPicked[rows + r] = row[t] }
        }
        tp.allReduce(&sumsAndPicked, count: 2 * rows, op: .sum)
        return (maxes, Array(sumsAndPicked[..<rows]), Array(sumsAndPicked[rows...]))
    }

    /// The entropy (nats) of the next-token distribution at every row of
    /// `acts.logits`, after `tokenLogProbs`: H = log Σe^z − Σ softmax(z)·z,
    /// its two sums added over the tensor group when the vocabulary is split.
    public func rowEntropies(_ acts: Activations) -> [Double] {
        let rows = acts.rows, v = shard.vocab
        guard parallel else { return (0..<rows).map { Entropy.of(logits: acts.logits.base + $0 * v, vocab: v) } }
        var maxes = (0..<rows).map { FastMath.max(acts.logits.base + $0 * v, count: v) }
        tp.allReduce(&maxes, count: rows, op: .max)
        var sums = [Double](repeating: 0, count: 2 * rows)   // Σ e^(z−m), then Σ e^(z−m)·(z−m)
        for r in 0..<rows {
            let row = acts.logits.base + r * v
            for j in 0..<v {
                let e = Foundation.exp(Double(row[j] - maxes[r]))
                sums[r] += e
                sums[rows + r] += e * Double(row[j] - maxes[r])
            }
        }
        tp.allReduce(&sums, count: 2 * rows, op: .sum)
        return (0..<rows).map { Foundation.log(sums[$0]) - sums[rows + $0] / sums[$0] }
    }

    /// Adds to `grads` the gradient of Σ_t g_t·log π(target_t), given
    /// g_t = ∂L/∂ log π(target_t) (the clipped surrogate's gradLogProbs):
    /// each row's logits get g_t·(onehot − softmax) — cross-entropy's
    /// backward with the row's own scale −g_t — then the model's backward.
    /// Starts from the activations `tokenLogProbs` left in `acts` for the
    /// same tokens (the forward pass is not run again).
    public func backwardLogProbs(tokens: [TokenID], targets: [TokenID], gradLogProbs: [Float], acts: Activations,
                                 grads: FloatBuffer? = nil) {
        precondition(!config.scalarHead)
        let v = shard.vocab
        if parallel {
            let (maxes, sums, _) = vocabRowStats(acts, targets: targets)
            let start = shard.vocabStart
            for r in 0..<acts.rows {
                let row = acts.logits.base + r * v, g = gradLogProbs[r]
                guard targets[r] >= 0 && g != 0 else { row.update(repeating: 0, count: v); continue }
                let scale = -g / sums[r]
                for j in 0..<v { row[j] = FastMath.exp(row[j] - maxes[r]) * scale }
                let t = Int(targets[r]) - start
                if t >= 0 && t < v { row[t] += g }
            }
        } else {
            for r in 0..<acts.rows {
                _ = CrossEntropy.forwardBackward(logits: acts.logits.base + r * v, targets: [targets[r]], rows: 1, vocab: v,
                                                 scale: -gradLogProbs[r])
            }
        }
        tokens.withUnsafeBufferPointer { backward(tokens: $0.baseAddress!, acts: acts, grads: grads ?? self.grads) }
    }
}
