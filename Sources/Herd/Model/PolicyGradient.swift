import Foundation

extension Llama {
    /// log π(target_t | tokens ≤ t) at every row (0 where the target is
    /// ignored): the per-token log-probabilities PPO's ratio and the KL
    /// penalty are made of. Forward only; `acts` keeps the activations for
    /// `backwardLogProbs`.
    public func tokenLogProbs(tokens: [TokenID], targets: [TokenID], acts: Activations) -> [Float] {
        precondition(!parallel && !config.scalarHead, "per-token log-probabilities of a single-rank language model")
        forwardLogits(tokens: tokens, acts: acts)
        let v = config.vocabSize
        return (0..<acts.rows).map { r in
            guard targets[r] >= 0 else { return 0 }
            let (loss, _) = CrossEntropy.forward(logits: acts.logits.base + r * v, targets: [targets[r]], rows: 1, vocab: v)
            return Float(-loss)
        }
    }

    /// Adds to `grads` the gradient of Σ_t g_t·log π(target_t), given
    /// g_t = ∂L/∂ log π(target_t) (the clipped surrogate's gradLogProbs):
    /// each row's logits get g_t·(onehot − softmax) — cross-entropy's
    /// backward with the row's own scale −g_t — then the model's backward.
    /// Starts from the activations `tokenLogProbs` left in `acts` for the
    /// same tokens (the forward pass is not run again).
    public func backwardLogProbs(tokens: [TokenID], targets: [TokenID], gradLogProbs: [Float], acts: Activations,
                                 grads: FloatBuffer? = nil) {
        precondition(!parallel && !config.scalarHead)
        let v = config.vocabSize
        for r in 0..<acts.rows {
            _ = CrossEntropy.forwardBackward(logits: acts.logits.base + r * v, targets: [targets[r]], rows: 1, vocab: v,
                                             scale: -gradLogProbs[r])
        }
        backward(tokens: tokens, acts: acts, grads: grads ?? self.grads)
    }
}
