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
    /// Generating on a tensor group: the leader of its other ranks.
    public var leader: TensorGroupLeader?
    public var maxNewTokens = 64
    public var timeout = 60.0
    public var seed: UInt64 = 1
    /// Answers sampled at T = 1 per prompt: a prompt's share right is the
    /// mean over them, which makes the T = 1 figure (and a paired comparison
    /// of it) far less noisy than one draw per prompt.
    public var samples = 1
    /// Held-out dialogues under a standing instruction (Ghost Attention's
    /// measure): each policy's share of turns 1, 2, … that keep it.
    public var instructedDialogues: String?

    public init(policies: [Policy], prompts: String, annotator: [String]) {
        self.policies = policies; self.prompts = prompts; self.annotator = annotator
    }

    public struct Result: Sendable, Codable, Equatable {
        public var policy: String
        public var greedy: RatingStep.Summary
        /// The share exactly right (top-rated) when answers are sampled at T = 1.
        public var sampledTopShare: Double
        /// The ratings of the answers sampled at T = 1.
        public var sampled: RatingStep.Summary?
        public var winRate: Double?
        /// Per prompt (by id): 1 a win against the reference, ½ a tie, 0 a loss.
        public var wins: [String: Double]?
        public var reference: String?
        /// Per turn, the share of greedy answers that keep an instruction given on turn 1.
        public var instructionByTurn: [Double]?
        /// Per held-out dialogue (by id), whether each greedy turn kept it.
        public var instructionKept: [String: [Bool]]?
    }

    public func run(log: (String) -> Void = { _ in }) throws -> [String: Result] {
        let all = try RatingStep.readPrompts(prompts)
        let dialogues = all.map(\.dialogue)
        let instructed = try instructedDialogues.map { try JSONLines.instructedDialogues(path: $0) }
        let annotator = try Annotator(command: annotator)
        defer { annotator.stop() }
        func sampler(_ path: String, role: String) throws -> ChatSampler { try ChatSampler.load(path, role: role, leader: leader) }
        /// Each model loaded once, answering at each temperature asked.
        func answers(_ s: ChatSampler, temperatures: [Double]) throws -> [[String]] {
            try temperatures.map { try s.answers(dialogues, temperature: $0, maxNewTokens: maxNewTokens, seed: seed) }
        }
        var out: [String: Result] = [:]
        for p in policies {
            let policy = try sampler(p.path, role: "policy \(p.name)")
            let greedy = try answers(policy, temperatures: [0])[0]
            let g = try RatingStep.rate(all, answers: greedy, annotator: annotator, timeout: timeout, tag: "eval/\(p.name)/greedy")
            // Sample j of a prompt from stream (seed + j), the first as one sample always was.
            var rated: [RatingStep.RatedAnswer] = []
            for j in 0..<max(1, samples) {
                let sampled = try policy.answers(dialogues, temperature: 1, maxNewTokens: maxNewTokens, seed: seed &+ UInt64(j) &* 0x9E37_79B9)
                rated += try RatingStep.rate(all, answers: sampled, annotator: annotator, timeout: timeout,
                                             tag: "eval/\(p.name)/sampled" + (j == 0 ? "" : "\(j + 1)")).answers ?? []
            }
            let s = RatingStep.summary(rated)
            var win: Double?, wins: [String: Double]?
            if let ref = p.reference {
                let theirs = try answers(try sampler(ref, role: "reference policy of \(p.name)"), temperatures: [0])[0]
                var each: [String: Double] = [:]
                for (i, prompt) in all.enumerated() {
                    if greedy[i] == theirs[i] { each[prompt.id] = 0.5; continue }
                    let a = try annotator.compare(.init(id: "win/\(p.name)/\(prompt.id)", dialogue: prompt.dialogue,
                                                        responses: [greedy[i], theirs[i]]), timeout: timeout)
                    each[prompt.id] = a.chosen == 0 ? 1 : 0
                }
                win = all.reduce(0.0) { $0 + each[$1.id]! } / Double(all.count)
                wins = each
            }
            let kept = try instructed.map {
                try InstructionFollowing.keptByDialogue(policy, dialogues: $0, annotator: annotator, maxNewTokens: maxNewTokens,
                                                        timeout: timeout, tag: "eval/\(p.name)/gatt")
            }
            let byTurn = kept.map(InstructionFollowing.shares)
            out[p.name] = Result(policy: p.path, greedy: g, sampledTopShare: s.topShare, sampled: s, winRate: win, wins: wins,
                                 reference: p.reference, instructionByTurn: byTurn, instructionKept: kept)
            log("\(p.name)'s answers: " + policy.meter.summary)
            log(String(format: "%@: helpfulness %.2f, right %.3f (T=1: %.3f), violations %.3f%@%@", p.name, g.meanHelpfulness, g.topShare,
                       s.topShare, g.violationShare, win.map { String(format: ", win rate %.3f", $0) } ?? "",
                       byTurn.map { ", instruction kept by turn " + $0.map { String(format: "%.3f", $0) }.joined(separator: " ") } ?? ""))
        }
        return out
    }
}
