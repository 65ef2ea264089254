import Foundation

/// One sample of a bag (../shared/RLHF.md): an answer drawn from the
/// policy for a prompt, with both reward models' scores and the combined one.
public struct SampleRecord: Codable, Sendable, Equatable {
    public var promptID: String
    public var iteration: String
    public var policy: String
    public var k: Int
    public var text: String
    public var rewardHelpful: Double
    public var rewardSafety: Double
    public var reward: Double

    enum CodingKeys: String, CodingKey {
        case promptID = "prompt_id", iteration, policy, k, text
        case rewardHelpful = "reward_helpful", rewardSafety = "reward_safety", reward
    }

    public init(promptID: String, iteration: String, policy: String, k: Int, text: String,
                rewardHelpful: Double, rewardSafety: Double, reward: Double) {
        self.promptID = promptID; self.iteration = iteration; self.policy = policy; self.k = k; self.text = text
        self.rewardHelpful = rewardHelpful; self.rewardSafety = rewardSafety; self.reward = reward
    }
}

/// Rejection sampling: K answers per prompt from the policy, scored by the
/// helpfulness and safety reward models and combined as the paper does —
/// the safety reward when the prompt is tagged unsafe or the safety score is
/// below 0.15, the helpfulness reward otherwise. Rewards are σ(score), in
/// (0, 1), the scale on which the paper states the 0.15 threshold (and its
/// PPO takes LOGIT of the combined reward). The bag is appended a chunk
/// of prompts at a time (and fsynced), so a stopped run continues inside
/// its bag; sample j of prompt i draws from stream (seed, i, j), so the bag
/// does not depend on how the prompts are batched.
public struct RejectionSampling {
    public var policy: String
    public var helpfulness: String
    public var safety: String
    public var prompts: String
    public var bag: String
    public var iteration: String
    public var k = 4
    public var temperature = 1.0
    public var maxNewTokens = 64
    public var seed: UInt64 = 1
    /// Prompts per generation batch (K sequences each).
    public var chunk = 8
    /// Under mpirun: this rank's group and its share. Chunk c of the
    /// prompts goes to group c mod groups and into its part file (written
    /// by the group's first rank); rank 0 then appends every part to the
    /// bag in prompt order — the same bag as one process writes.
    public var groups = GenerationGroups.single

    public static let safetyThreshold = 0.15

    public init(policy: String, helpfulness: String, safety: String, prompts: String, bag: String, iteration: String) {
        self.policy = policy; self.helpfulness = helpfulness; self.safety = safety
        self.prompts = prompts; self.bag = bag; self.iteration = iteration
    }

    public static func combined(helpful: Double, safety: Double, safetyPrompt: Bool) -> Double {
        safetyPrompt || safety < safetyThreshold ? safety : helpful
    }

    /// Samples the prompts the bag lacks and returns the whole bag.
    public func run(log: (String) -> Void = { _ in }) throws -> [SampleRecord] {
        let all = try JSONLines.read(PromptRecord.self, path: prompts) { (p: PromptRecord) throws(RecordError) in
            try JSONLines.checkTurns(p.dialogue, endsWithAssistant: false)
        }
        var existing: [SampleRecord] = []
        if FileManager.default.fileExists(atPath: bag) { existing = try JSONLines.read(SampleRecord.self, path: bag) }
        let complete = Dictionary(grouping: existing, by: \.promptID).filter { $0.value.count >= k }.keys
        let todo = all.enumerated().filter { !complete.contains($0.element.id) }
        log("\(all.count) prompts, \(complete.count) already sampled in \(bag), \(todo.count) to go, K = \(k)")
        guard !todo.isEmpty else { return existing }
        let rank = groups.dataRank, size = groups.dataSize
        let split = ModelPlacement(tensor: groups.tensor)
        let (policyModel, tokenizer) = try ModelFiles.loadModelAndTokenizer(policy, role: "policy", placement: split)
        let sampler = try ChatSampler(model: policyModel, tokenizer: tokenizer)
        let rewards = try RewardModels(helpfulness: helpfulness, safety: safety, placement: split.frozen)
        let target = size > 1 ? "\(bag).part-\(rank)" : bag
        if size > 1 && groups.writes { try? FileManager.default.removeItem(atPath: target) }
        let file = groups.writes ? try AppendOnlyFile(path: target) : nil
        let redone = Set(todo.map(\.element.id))
        var out = existing.filter { !redone.contains($0.promptID) }
        var start = 0, chunkIndex = -1
        while start < todo.count {
            let part = Array(todo[start..<min(start + chunk, todo.count)])
            chunkIndex += 1
            if chunkIndex % size != rank { start += part.count; continue }
            let texts = try sampler.samples(part.map(\.element.dialogue), k: k, temperature: temperature, maxNewTokens: maxNewTokens,
                                            seed: { i, j in SplitMix64.mix(SplitMix64.mix(seed, UInt64(part[i].offset)), UInt64(j)) },
                                            batch: chunk * k)
            var lines = Data()
            for (n, (_, p)) in part.enumerated() {
                for j in 0..<k {
                    let (h, s) = try rewards.scores(p.dialogue, answer: texts[n][j])
                    let r = SampleRecord(promptID: p.id, iteration: iteration, policy: policy, k: j, text: texts[n][j], rewardHelpful: h,
                                         rewardSafety: s, reward: Self.combined(helpful: h, safety: s, safetyPrompt: p.safety ?? false))
                    out.append(r)
                    lines += try JSONLines.line(r)
                }
            }
            try file?.append(lines)
            start += part.count
            log("sampled \(min(start, todo.count)) of \(todo.count) prompts")
        }
        log("this rank's group: " + sampler.meter.summary)
        let world = groups.world
        guard world.size > 1 else { return out }
        world.barrier()
        if world.rank == 0 && size > 1 { try mergeParts(size: size, order: all.map(\.id)) }
        world.barrier()
        return try JSONLines.read(SampleRecord.self, path: bag)
    }

    /// Rank 0: every rank's part appended to the bag in prompt order, then removed.
    func mergeParts(size: Int, order: [String]) throws {
        var records: [SampleRecord] = []
        for r in 0..<size { records += try JSONLines.read(SampleRecord.self, path: "\(bag).part-\(r)") }
        let position = Dictionary(order.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        records.sort { (position[$0.promptID] ?? 0, $0.k) < (position[$1.promptID] ?? 0, $1.k) }
        try AppendOnlyFile(path: bag).append(try JSONLines.data(records))
        for r in 0..<size { try? FileManager.default.removeItem(atPath: "\(bag).part-\(r)") }
    }

    /// The paper's Figure 7: over prompts, the mean of the maximum and of
    /// the median combined reward among the first K' samples, K' = 1, 2, 4, … K.
    public static func figure7(_ bag: [SampleRecord], k: Int) -> [(k: Int, meanMax: Double, meanMedian: Double)] {
        // In the bag's order (a Dictionary's is not the same from one process
        // to the next, and sums of doubles depend on it).
        var order: [String] = [], groups: [String: [SampleRecord]] = [:]
        for s in bag {
            if groups[s.promptID] == nil { order.append(s.promptID) }
            groups[s.promptID, default: []].append(s)
        }
        let byPrompt = order.map { groups[$0]!.sorted { $0.k < $1.k }.map(\.reward) }
        var ks: [Int] = []
        var x = 1
        while x < k { ks.append(x); x *= 2 }
        ks.append(k)
        return ks.map { kk in
            var maxSum = 0.0, medianSum = 0.0
            for rewards in byPrompt {
                let r = Array(rewards.prefix(kk)).sorted()
                maxSum += r.last ?? 0
                medianSum += r.count % 2 == 1 ? r[r.count / 2] : (r[r.count / 2 - 1] + r[r.count / 2]) / 2
            }
            let n = Double(max(1, byPrompt.count))
            return (kk, maxSum / n, medianSum / n)
        }
    }
}
