import Foundation

/// The helpfulness and safety reward models, loaded together, scoring an
/// answer to a dialogue as σ(score) — the (0, 1) scale on which the paper
/// states its 0.15 safety threshold.
public struct RewardModels {
    let helpful: Llama, helpfulTokens: any Tokenizer
    let safe: Llama, safeTokens: any Tokenizer

    /// Laid out over several ranks (`placement`), each holds its part of
    /// both models, and the ranks score every answer together.
    public init(helpfulness: String, safety: String, placement: ModelPlacement = ModelPlacement()) throws {
        (helpful, helpfulTokens) = try ModelFiles.loadModelAndTokenizer(helpfulness, role: "helpfulness reward model", placement: placement)
        (safe, safeTokens) = try ModelFiles.loadModelAndTokenizer(safety, role: "safety reward model", placement: placement)
        for (m, label) in [(helpful, helpfulness), (safe, safety)] where !m.config.scalarHead {
            throw InteropError.file(label, "not a reward model (it has no scalar head)")
        }
    }

    static func sigmoid(_ x: Float) -> Double { 1 / (1 + Foundation.exp(-Double(x))) }

    public func scores(_ dialogue: [ChatMessage], answer: String) throws -> (helpful: Double, safety: Double) {
        (try score(dialogue, answer: answer, safety: false), try score(dialogue, answer: answer, safety: true))
    }

    /// Both models' scores before σ (what a frozen-model group sends back).
    public func rawScores(_ dialogue: [ChatMessage], answer: String) throws -> (helpful: Float, safety: Float) {
        (try rawScore(dialogue, answer: answer, safety: false), try rawScore(dialogue, answer: answer, safety: true))
    }

    /// Both models' scores before σ of several answers, each model in one forward.
    public func rawScores(_ answers: [(dialogue: [ChatMessage], answer: String)]) throws -> [(helpful: Float, safety: Float)] {
        func encoded(_ tokenizer: any Tokenizer) throws -> [[TokenID]] {
            try answers.map { try ChatFormat.encode($0.dialogue + [ChatMessage(.assistant, $0.answer)], tokenizer: tokenizer).tokens }
        }
        return zip(helpful.rewards(tokens: try encoded(helpfulTokens)), safe.rewards(tokens: try encoded(safeTokens))).map { ($0, $1) }
    }

    /// One model's score: the safety model's, or the helpfulness model's.
    public func score(_ dialogue: [ChatMessage], answer: String, safety: Bool) throws -> Double {
        Self.sigmoid(try rawScore(dialogue, answer: answer, safety: safety))
    }

    func rawScore(_ dialogue: [ChatMessage], answer: String, safety: Bool) throws -> Float {
        let turns = dialogue + [ChatMessage(.assistant, answer)]
        let (model, tokenizer) = safety ? (safe, safeTokens) : (helpful, helpfulTokens)
        return model.reward(tokens: try ChatFormat.encode(turns, tokenizer: tokenizer).tokens)
    }
}
