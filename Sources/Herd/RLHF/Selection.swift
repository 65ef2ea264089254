import Foundation

/// Selection after rejection sampling: per prompt, the sample with the
/// highest combined reward — from this iteration's bag only, or, from
/// iteration `poolFrom` on (the paper: V4), from every bag so far — written
/// as demonstrations, the data every policy size is then fine-tuned on
/// (`kind: sft`), which is how the largest model's best answers are
/// distilled into the smaller ones.
public struct Selection {
    public var prompts: String
    /// This iteration's bag, then the earlier ones.
    public var bag: String
    public var earlierBags: [String] = []
    /// The iteration number (V4 → 4) and the first that pools.
    public var iteration: Int
    public var poolFrom = 4
    /// The control arm: the annotator's ratings of the samples (keyed by
    /// `SampleRatings.key`) rank them instead of the reward models; the
    /// combined reward only breaks ties.
    public var ratings: [String: SampleRatings.Rating]?
    /// Earlier demonstrations (the SFT data) to fine-tune on beside the
    /// selections: `count` of the file's, drawn with the iteration as seed
    /// and written after the selections.
    public var demonstrations: (file: String, count: Int)?

    public init(prompts: String, bag: String, iteration: Int) {
        self.prompts = prompts; self.bag = bag; self.iteration = iteration
    }

    public var pools: Bool { iteration >= poolFrom }

    /// The chosen sample per prompt (prompts with no sample are left out).
    public func best() throws -> [String: SampleRecord] {
        var samples = try JSONLines.read(SampleRecord.self, path: bag)
        if pools { for b in earlierBags { samples += try JSONLines.read(SampleRecord.self, path: b) } }
        func score(_ s: SampleRecord) -> Double {
            guard let ratings else { return s.reward }
            return (ratings[SampleRatings.key(s)]?.score ?? -1) + s.reward / 2
        }
        var best: [String: SampleRecord] = [:]
        for s in samples where best[s.promptID].map({ score(s) > score($0) }) ?? true { best[s.promptID] = s }
        return best
    }

    /// Writes the selections as demonstrations (the prompt's dialogue and
    /// the chosen answer), in the prompts' order; returns how many.
    @discardableResult
    public func write(to out: String) throws -> Int {
        let chosen = try best()
        var demonstrations = try JSONLines.read(PromptRecord.self, path: prompts).compactMap { p in
            chosen[p.id].map { Demonstration(id: "\($0.iteration)/\(p.id)", dialogue: p.dialogue + [ChatMessage(.assistant, $0.text)]) }
        }
        let selected = demonstrations.count
        if let (file, count) = self.demonstrations {
            let earlier = try JSONLines.demonstrations(path: file)
            guard !earlier.isEmpty else { throw RecordError(file: file, line: 0, message: "no demonstrations to mix in") }
            for k in 0..<min(count, earlier.count) {
                var d = earlier[EpochOrder.item(seed: 0xDE30 &+ UInt64(iteration), index: k, count: earlier.count)]
                d.id = "earlier/\(d.id)"
                demonstrations.append(d)
            }
        }
        try JSONLines.write(demonstrations, to: out)
        return selected
    }

    /// The bags this selection reads: this iteration's, then the earlier ones it pools.
    public var bags: [String] { [bag] + (pools ? earlierBags : []) }

    /// "V4" → 4.
    public static func number(_ iteration: String) -> Int? {
        Int(iteration.uppercased().hasPrefix("V") ? String(iteration.dropFirst()) : iteration)
    }
}
