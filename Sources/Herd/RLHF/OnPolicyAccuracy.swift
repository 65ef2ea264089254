import Foundation

/// The reward models on the policy's own answers: their accuracy on a
/// freshly labelled batch of comparisons they were not trained on — the
/// paper's reason for collecting new preferences every round. The
/// helpfulness model is scored on the comparisons of prompts not tagged
/// safety, the safety model on those tagged safety; a tie counts one half.
public struct OnPolicyAccuracy: Sendable, Codable, Equatable {
    public struct Part: Sendable, Codable, Equatable {
        public var pairs: Int
        public var accuracy: Double?
        /// By the annotator's degree: the fine distinctions (a right answer
        /// against a near miss) are where a weak reward model fails.
        public var byDegree: [String: Double]?
        public var pairsByDegree: [String: Int]?

        /// Accuracy over some degrees together (weighted by their pairs).
        public func accuracy(over degrees: [String]) -> Double? {
            guard let byDegree, let pairsByDegree else { return nil }
            let n = degrees.reduce(0) { $0 + (pairsByDegree[$1] ?? 0) }
            guard n > 0 else { return nil }
            return degrees.reduce(0.0) { $0 + (byDegree[$1] ?? 0) * Double(pairsByDegree[$1] ?? 0) } / Double(n)
        }
    }
    public var batch: String
    public var helpfulness: Part
    public var safety: Part

    public static func measure(helpfulness: String, safety: String, pool: String, batch: String, prompts: String) throws -> OnPolicyAccuracy {
        try measure(RewardModels(helpfulness: helpfulness, safety: safety), comparisons: JSONLines.comparisons(path: pool).filter { $0.batch == batch },
                    batch: batch, prompts: prompts)
    }

    /// Each batch of a pool measured apart (a probe's batches are its task families).
    public static func byBatch(_ models: RewardModels, pool: String, prompts: String) throws -> [String: OnPolicyAccuracy] {
        let all = try JSONLines.comparisons(path: pool)
        var out: [String: OnPolicyAccuracy] = [:]
        for batch in Set(all.compactMap(\.batch)) {
            out[batch] = try measure(models, comparisons: all.filter { $0.batch == batch }, batch: batch, prompts: prompts)
        }
        return out
    }

    static func measure(_ models: RewardModels, comparisons: [Comparison], batch: String, prompts: String) throws -> OnPolicyAccuracy {
        let tags = Dictionary(try JSONLines.read(PromptRecord.self, path: prompts).map { ($0.id, $0.safety ?? false) },
                              uniquingKeysWith: { a, _ in a })
        // Per model (helpfulness, safety) and degree: the pairs ranked right (ties ½) and the pairs.
        var tally: [[PreferenceDegree: (right: Double, pairs: Int)]] = [[:], [:]]
        for c in comparisons {
            let unsafe = tags[c.promptID] ?? false
            let x = try models.score(c.dialogue, answer: c.responses[c.chosen], safety: unsafe)
            let y = try models.score(c.dialogue, answer: c.responses[1 - c.chosen], safety: unsafe)
            let k = unsafe ? 1 : 0
            let t = tally[k][c.degree] ?? (0, 0)
            tally[k][c.degree] = (t.right + (x > y ? 1 : x == y ? 0.5 : 0), t.pairs + 1)
        }
        func part(_ k: Int) -> Part {
            let pairs = tally[k].values.reduce(0) { $0 + $1.pairs }, right = tally[k].values.reduce(0) { $0 + $1.right }
            return Part(pairs: pairs, accuracy: pairs > 0 ? right / Double(pairs) : nil,
                        byDegree: Dictionary(uniqueKeysWithValues: tally[k].map { ($0.key.rawValue, $0.value.right / Double($0.value.pairs)) }),
                        pairsByDegree: Dictionary(uniqueKeysWithValues: tally[k].map { ($0.key.rawValue, $0.value.pairs) }))
        }
        return OnPolicyAccuracy(batch: batch, helpfulness: part(0), safety: part(1))
    }
}
