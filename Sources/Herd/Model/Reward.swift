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

    /// Scores of several sequences in one forward: each keeps its end (as
    /// `reward`), the shorter padded after it — attention is causal, so a
    /// sequence's last row does not see its padding.
    public func rewards(tokens batch: [[TokenID]]) -> [Float] {
        precondition(config.scalarHead, "rewards() needs a model with a scalar head")
        guard !batch.isEmpty else { return [] }
        let kept = batch.map { Array($0.suffix(config.maxSeqLen)) }
        let T = kept.map(\.count).max()!
        var tokens = [TokenID](repeating: 0, count: kept.count * T)
        for (b, s) in kept.enumerated() { for (t, id) in s.enumerated() { tokens[b * T + t] = id } }
        let acts = makeActivations(batch: kept.count, seqLen: T)
        forwardLogits(tokens: tokens, acts: acts)
        return kept.enumerated().map { b, s in acts.logits[b * T + s.count - 1] }
    }
}
