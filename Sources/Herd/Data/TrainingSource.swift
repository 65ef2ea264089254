import Foundation

/// Where a job's sequences come from: an in-memory corpus (TokenDataset) or
/// prepared token shards (ShardDataset). Training window `index` is the
/// global sequence counter, so any layout reads the same data.
public protocol TrainingSource: Sendable {
    var seqLen: Int { get }
    var trainTokens: Int { get }
    var validationTokens: Int { get }
    func trainWindow(seed: UInt64, index: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) throws
    var validationWindows: Int { get }
    func validationWindow(_ i: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) throws
    /// How many of training window `index`'s targets count (the loss is the
    /// mean over the counted targets of the global batch).
    func trainTargetCount(seed: UInt64, index: Int) -> Int
    /// The token where attention starts afresh inside a window (packed
    /// examples never attend to each other); nil when a window is one text.
    var packingSeparator: TokenID? { get }
    /// What a held-out evaluation of this data measures.
    var heldOutMeasure: HeldOutMeasure { get }
}

/// What the held-out split of a dataset is evaluated by.
public enum HeldOutMeasure: Sendable {
    /// The mean loss over the counted targets of the held-out windows.
    case tokenLoss
    /// A reward model's ranking loss and accuracy over comparison pairs
    /// (held-out windows 2p and 2p + 1 are pair p's chosen and rejected answers).
    case ranking([ComparisonDataset.Pair])
    /// The mean loss over each source's held-out windows as well as over all
    /// of them (a mixture of datasets: `MixtureSource`).
    case tokenLossBySource(names: [String], windows: [Range<Int>], schedule: MixtureSchedule)
}

extension HeldOutMeasure {
    var isBySource: Bool { if case .tokenLossBySource = self { return true } else { return false } }
}

extension TrainingSource {
    /// Pretraining windows count every target.
    public func trainTargetCount(seed: UInt64, index: Int) -> Int { seqLen }
    public var packingSeparator: TokenID? { nil }
    public var heldOutMeasure: HeldOutMeasure { .tokenLoss }
}

extension TokenDataset: TrainingSource {
    public var trainTokens: Int { train.count }
    public var validationTokens: Int { validation.count }
}

/// Token shards written by `herd data prepare` (DIR/train, DIR/validation,
/// DIR/tokenizer.json), sampled by `ShardSampler`.
public struct ShardDataset: TrainingSource, @unchecked Sendable {
    public let seqLen: Int
    let train: TokenShards.Reader, validation: TokenShards.Reader
    let trainSampler: ShardSampler, validationSlots: ShardSampler

    public init(dir: String, seqLen: Int, seed: UInt64) throws {
        self.seqLen = seqLen
        train = try TokenShards.Reader(dir: (dir as NSString).appendingPathComponent("train"))
        validation = try TokenShards.Reader(dir: (dir as NSString).appendingPathComponent("validation"))
        trainSampler = ShardSampler(shardTokenCounts: train.index.shards.map(\.tokens), seqLen: seqLen, seed: seed)
        validationSlots = ShardSampler(shardTokenCounts: validation.index.shards.map(\.tokens), seqLen: seqLen, seed: seed)
        guard trainSampler.totalSlots > 0 else {
            throw ShardError.file(train.dir, "no shard holds one sequence of seq_len + 1 = \(seqLen + 1) tokens")
        }
    }

    public var trainTokens: Int { train.index.tokenCount }
    public var validationTokens: Int { validation.index.tokenCount }

    public func trainWindow(seed: UInt64, index: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) throws {
        let (shard, offset) = trainSampler.location(forSequence: index)
        try read(train, shard, offset, tokens, targets)
    }

    public var validationWindows: Int { validationSlots.totalSlots }

    public func validationWindow(_ i: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) throws {
        let (shard, offset) = validationSlots.location(ofSlot: i)
        try read(validation, shard, offset, tokens, targets)
    }

    private func read(_ r: TokenShards.Reader, _ shard: Int, _ offset: Int,
                      _ tokens: UnsafeMutablePointer<TokenID>, _ targets: UnsafeMutablePointer<TokenID>) throws {
        var window = [TokenID](repeating: 0, count: seqLen + 1)
        try window.withUnsafeMutableBufferPointer { try r.read(shard: shard, offset: offset, count: seqLen + 1, into: $0.baseAddress!) }
        window.withUnsafeBufferPointer {
            tokens.update(from: $0.baseAddress!, count: seqLen)
            targets.update(from: $0.baseAddress! + 1, count: seqLen)
        }
    }

    /// `herd data prepare`: tokenizes a corpus into DIR/train and DIR/validation
    /// (the last fraction held out), one file of the corpus in memory at a
    /// time: a first pass finds a char vocabulary and the length, a second
    /// encodes and streams the tokens into shards. The token sequence is the
    /// one `Corpus` gives (files joined by a newline).
    public static func prepare(corpus: String, tokenizer kind: String, out: String, shardTokens: Int,
                               validationFraction: Double) throws -> (train: TokenShards.Index, validation: TokenShards.Index) {
        var scalars = Set<Unicode.Scalar>(), total = 0, files = 0
        try Corpus.forEachText(corpus) { _, text in
            if files > 0 { total += 1 }   // the newline between files
            files += 1
            if kind == "byte" { total += text.utf8.count } else {
                for c in text.unicodeScalars { scalars.insert(c) }
                total += text.unicodeScalars.count
            }
        }
        if files > 1 { scalars.insert("\n") }
        let tok: any Tokenizer = kind == "byte" ? ByteTokenizer() : CharTokenizer(characters: scalars.sorted { $0.value < $1.value })
        let cut = Int((Double(total) * (1 - validationFraction)).rounded(.down))
        let tw = try TokenShards.Writer(dir: (out as NSString).appendingPathComponent("train"), tokenizer: kind,
                                        vocabSize: tok.vocabSize, shardTokens: shardTokens)
        let vw = try TokenShards.Writer(dir: (out as NSString).appendingPathComponent("validation"), tokenizer: kind,
                                        vocabSize: tok.vocabSize, shardTokens: shardTokens)
        var written = 0, first = true
        try Corpus.forEachText(corpus) { _, text in
            let ids = try tok.encode(first ? text : "\n" + text)
            first = false
            let toTrain = max(0, min(ids.count, cut - written))
            if toTrain > 0 { try tw.append(Array(ids[..<toTrain])) }
            if toTrain < ids.count { try vw.append(Array(ids[toTrain...])) }
            written += ids.count
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let tokFile = (out as NSString).appendingPathComponent("tokenizer.json")
        if let char = tok as? CharTokenizer { try enc.encode(char).write(to: URL(fileURLWithPath: tokFile), options: .atomic) }
        else { try enc.encode(["kind": kind]).write(to: URL(fileURLWithPath: tokFile), options: .atomic) }
        return (try tw.finish(), try vw.finish())
    }
}
