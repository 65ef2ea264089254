import Foundation

extension Llama {
    /// A reward model's score of one sequence (a dialogue ending with the
    /// answer, in the chat format): the scalar head at its last token.
    /// Dialogues longer than the context keep their end, as in training.
    public func reward(tokens: [TokenID]) -> Float {
        precondition(config.scalarHead, "reward() needs a model with a scalar head")
        let kept = Array(tokens.suffix(config.maxSeqLen))
        let acts = makeActivations(batch: 1, seqLen: kept.count)
        forwardLogits(tokens: kept, acts: acts)
        return acts.logits[kept.count - 1]
    }
}
