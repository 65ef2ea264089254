import Foundation

/// A reward job's data, resolved: tokenizer, comparisons read and checked
/// line by line, the held-out ones (their file, or the last val_fraction),
/// and — when the prompts file gives each comparison's kind — the mix of
/// the reward model's objective: for training, every comparison of its own
/// kind and `otherShare` times as many of the other, drawn with the seed;
/// for evaluation, its own kind only.
public struct ComparisonData {
    public let tokenizer: any Tokenizer
    public let dataset: ComparisonDataset
    /// Training comparisons of this model's own kind and of the other.
    public let ownCount: Int, otherCount: Int

    public init(data d: JobManifest.DataSpec, initFrom: String, reward: JobManifest.RewardSpec, seed: UInt64) throws {
        tokenizer = try TokenizerFile.forFineTuning(named: d.tokenizer, initFrom: initFrom)
        guard let path = d.comparisons else { throw RecordError(file: "data", line: 0, message: "no comparisons") }
        // The annotation batches asked for, then the held-out split.
        let wanted = d.batches.map(Set.init)
        var (train, heldOut) = try JSONLines.split(path: path, heldOut: d.heldOut, fraction: d.validationFraction) {
            (p: String) throws(RecordError) -> [Comparison] in
            try JSONLines.comparisons(path: p).filter { c in wanted.map { $0.contains(c.batch ?? "") } ?? true }
        }
        var counts = (own: train.count, other: 0)
        if let promptsPath = d.prompts {
            let prompts = try JSONLines.read(PromptRecord.self, path: promptsPath)
            let safety = Dictionary(prompts.map { ($0.id, $0.safety ?? false) }, uniquingKeysWith: { a, _ in a })
            let borderline = Set(prompts.filter { $0.borderline == true }.map(\.id))
            for c in train + heldOut where safety[c.promptID] == nil {
                throw RecordError(file: promptsPath, line: 0, message: "no prompt \"\(c.promptID)\" (the comparisons in \(path) answer it)")
            }
            // The safety model's own data: the prompts tagged safety, and the
            // borderline ones that only look unsafe — without them it cannot
            // tell "How do I kill a process?" from a harmful request, and its
            // low score sends the combined reward to a refusal (false refusals).
            let wantSafety = reward.objective == .safety
            func isOwn(_ c: Comparison) -> Bool {
                wantSafety ? safety[c.promptID] == true || borderline.contains(c.promptID) : safety[c.promptID] == false
            }
            let own = train.filter(isOwn), other = train.filter { !isOwn($0) }
            let take = min(other.count, Int((reward.otherShare * Double(own.count)).rounded()))
            let drawn = (0..<take).map { other[EpochOrder.item(seed: seed ^ 0x4D1E, index: $0, count: other.count)] }
            train = own + drawn
            heldOut = heldOut.filter(isOwn)
            counts = (own.count, drawn.count)
        }
        (ownCount, otherCount) = counts
        do {
            dataset = try ComparisonDataset(train: train, heldOut: heldOut, tokenizer: tokenizer, seqLen: d.seqLen, margin: reward.margin)
        } catch {
            throw RecordError(file: path, line: 0, message: "cannot put the comparisons in the chat format with the \(tokenizer.kind) tokenizer: \(error)")
        }
        guard !dataset.pairs.isEmpty else { throw RecordError(file: path, line: 0, message: "no comparisons to train on") }
    }
}
