import Foundation

/// The evaluation that ends every iteration: each policy size answers the
/// held-out prompts, greedily and at T = 1; the annotator rates both sets
/// (helpfulness, violations, refusals of unsafe prompts, false refusals of
/// borderline ones, the share exactly right), and compares each greedy
/// answer with the reference policy's (the SFT model of that size): the
/// win rate, a tie (identical answers) counting one half.
public struct PolicyEvaluation {
    public struct Policy: Sendable, Codable, Equatable {
        public var name: String, path: String, reference: String?
        public init(name: String, path: String, reference: String?) { self.name = name; self.path = path; self.reference = reference }
    }

    public var policies: [Policy]
    public var prompts: String
    public var annotator: [String]
    public var maxNewTokens = 64
    public var timeout = 60.0
    public var seed: UInt64 = 1

    public init(policies: [Policy], prompts: String, annotator: [String]) {
        self.policies = policies; self.prompts = prompts; self.annotator = annotator
    }

    public struct Result: Sendable, Codable, Equatable {
        public var policy: String
        public var greedy: RatingStep.Summary
        /// The share exactly right (top-rated) when answers are sampled at T = 1.
        public var sampledTopShare: Double
        public var winRate: Double?
        public var reference: String?
    }

    public func run(log: (String) -> Void = { _ in }) throws -> [String: Result] {
        let all = try RatingStep.readPrompts(prompts)
        let dialogues = all.map(\.dialogue)
        let annotator = try Annotator(command: annotator)
        defer { annotator.stop() }
        func answers(_ path: String, role: String, temperature: Double) throws -> [String] {
            let (model, tokenizer) = try ModelFiles.loadModelAndTokenizer(path, role: role)
            return try ChatSampler(model: model, tokenizer: tokenizer)
                .answers(dialogues, temperature: temperature, maxNewTokens: maxNewTokens, seed: seed)
        }
        var out: [String: Result] = [:]
        for p in policies {
            let greedy = try answers(p.path, role: "policy \(p.name)", temperature: 0)
            let sampled = try answers(p.path, role: "policy \(p.name)", temperature: 1)
            let g = try RatingStep.rate(all, answers: greedy, annotator: annotator, timeout: timeout, tag: "eval/\(p.name)/greedy")
            let s = try RatingStep.rate(all, answers: sampled, annotator: annotator, timeout: timeout, tag: "eval/\(p.name)/sampled")
            var win: Double?
            if let ref = p.reference {
                let theirs = try answers(ref, role: "reference policy of \(p.name)", temperature: 0)
                var wins = 0.0
                for (i, prompt) in all.enumerated() {
                    if greedy[i] == theirs[i] { wins += 0.5; continue }
                    let a = try annotator.compare(.init(id: "win/\(p.name)/\(prompt.id)", dialogue: prompt.dialogue,
                                                        responses: [greedy[i], theirs[i]]), timeout: timeout)
                    if a.chosen == 0 { wins += 1 }
                }
                win = wins / Double(all.count)
            }
            out[p.name] = Result(policy: p.path, greedy: g, sampledTopShare: s.topShare, winRate: win, reference: p.reference)
            log(String(format: "%@: helpfulness %.2f, right %.3f (T=1: %.3f), violations %.3f%@", p.name, g.meanHelpfulness, g.topShare,
                       s.topShare, g.violationShare, win.map { String(format: ", win rate %.3f", $0) } ?? ""))
        }
        return out
    }
}

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
        let models = try RewardModels(helpfulness: helpfulness, safety: safety)
        let tags = Dictionary(try JSONLines.read(PromptRecord.self, path: prompts).map { ($0.id, $0.safety ?? false) },
                              uniquingKeysWith: { a, _ in a })
        var right = [0.0, 0.0], count = [0, 0]
        var degreeRight: [[PreferenceDegree: Double]] = [[:], [:]], degreeCount: [[PreferenceDegree: Int]] = [[:], [:]]
        for c in try JSONLines.comparisons(path: pool) where c.batch == batch {
            let unsafe = tags[c.promptID] ?? false
            let a = try models.scores(c.dialogue, answer: c.responses[c.chosen])
            let b = try models.scores(c.dialogue, answer: c.responses[1 - c.chosen])
            let (x, y) = unsafe ? (a.safety, b.safety) : (a.helpful, b.helpful)
            let k = unsafe ? 1 : 0
            count[k] += 1
            let score = x > y ? 1 : x == y ? 0.5 : 0
            right[k] += score
            degreeRight[k][c.degree, default: 0] += score
            degreeCount[k][c.degree, default: 0] += 1
        }
        func part(_ k: Int) -> Part {
            Part(pairs: count[k], accuracy: count[k] > 0 ? right[k] / Double(count[k]) : nil,
                 byDegree: Dictionary(uniqueKeysWithValues: degreeCount[k].map { ($0.key.rawValue, degreeRight[k][$0.key]! / Double($0.value)) }),
                 pairsByDegree: Dictionary(uniqueKeysWithValues: degreeCount[k].map { ($0.key.rawValue, $0.value) }))
        }
        return OnPolicyAccuracy(batch: batch, helpfulness: part(0), safety: part(1))
    }
}
