import Foundation

/// A reward model's data: each comparison as two sequences — the dialogue
/// with the chosen answer, then with the rejected one — in the chat format,
/// the reward read at the answer's last token (its EOS). Sequence 2i of a
/// batch is pair i's chosen answer and 2i + 1 its rejected one; the chosen
/// one's target at the read row carries the margin in thousandths
/// (`RewardPairs`), every other target is the ignore index. A dialogue
/// longer than a sequence keeps its end. Epochs visit the pairs in an
/// order drawn from (seed, epoch).
public struct ComparisonDataset: TrainingSource {
    public struct Window: Sendable {
        public var tokens: [TokenID]
        public var readRow: Int
    }

    public struct Pair: Sendable {
        public var chosen: Window
        public var rejected: Window
        public var degree: PreferenceDegree
        public var margin: Double
    }

    public let seqLen: Int
    public let pairs: [Pair]
    public let heldOut: [Pair]

    public init(train: [Comparison], heldOut: [Comparison], tokenizer: any Tokenizer, seqLen: Int, margin: MarginTable) throws {
        self.seqLen = seqLen
        func pair(_ c: Comparison) throws -> Pair {
            func window(_ answer: String) throws -> Window {
                let ids = try ChatFormat.encode(c.dialogue + [ChatMessage(.assistant, answer)], tokenizer: tokenizer).tokens
                let kept = Array(ids.suffix(seqLen))
                return Window(tokens: kept + [TokenID](repeating: 0, count: seqLen - kept.count), readRow: kept.count - 1)
            }
            return Pair(chosen: try window(c.responses[c.chosen]), rejected: try window(c.responses[1 - c.chosen]),
                        degree: c.degree, margin: margin.margin(c.degree))
        }
        pairs = try train.map(pair)
        self.heldOut = try heldOut.map(pair)
    }

    public var trainTokens: Int { 2 * pairs.count * seqLen }
    public var validationTokens: Int { 2 * heldOut.count * seqLen }
    public var validationWindows: Int { 2 * heldOut.count }

    func fill(_ p: Pair, chosen: Bool, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) {
        let w = chosen ? p.chosen : p.rejected
        w.tokens.withUnsafeBufferPointer { tokens.update(from: $0.baseAddress!, count: seqLen) }
        targets.update(repeating: CrossEntropy.ignoreIndex, count: seqLen)
        targets[w.readRow] = chosen ? TokenID((p.margin * 1000).rounded()) : 0
    }

    public func trainWindow(seed: UInt64, index: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) throws {
        let p = pairs[EpochOrder.item(seed: seed, index: index / 2, count: pairs.count)]
        fill(p, chosen: index % 2 == 0, tokens: tokens, targets: targets)
    }

    /// The loss is the mean over pairs: a pair counts once, on its chosen sequence.
    public func trainTargetCount(seed: UInt64, index: Int) -> Int { index % 2 == 0 ? 1 : 0 }

    /// Held out, a reward model is judged by how often it ranks the chosen answer first.
    public var heldOutMeasure: HeldOutMeasure { .ranking(heldOut) }

    public func validationWindow(_ i: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) throws {
        fill(heldOut[i / 2], chosen: i % 2 == 0, tokens: tokens, targets: targets)
    }
}

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
