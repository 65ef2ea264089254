import Foundation

/// A Megatron indexed dataset (`herd data prepare`'s, or one written by
/// Megatron's preprocess_data.py) as a job's data: its documents' tokens as
/// one stream, packed into windows that may cross documents (each document
/// carries its own BOS/EOS), as Llama was pretrained. The last
/// `validationFraction` of the tokens, from a document's start, is held out.
/// Windows are sampled by `ShardSampler`, so any size is read on demand.
public struct IndexedTokenSource: TrainingSource, @unchecked Sendable {
    public let seqLen: Int
    public let prefix: String
    let reader: IndexedDatasetReader
    /// The token where the held-out split starts.
    let trainEnd: Int
    let trainSampler: ShardSampler, validationSlots: ShardSampler

    public init(prefix: String, seqLen: Int, seed: UInt64, validationFraction: Double) throws {
        self.seqLen = seqLen
        self.prefix = prefix
        reader = try IndexedDatasetReader(prefix: prefix)
        let total = reader.tokenCount
        let target = Int((Double(total) * (1 - validationFraction)).rounded(.down))
        // The first sequence starting at or after the target (binary search over the starts).
        var lo = 0, hi = reader.sequenceCount
        while lo < hi {
            let mid = (lo + hi) / 2
            if reader.sequenceStart(mid) < target { lo = mid + 1 } else { hi = mid }
        }
        trainEnd = validationFraction > 0 ? reader.sequenceStart(lo) : total
        trainSampler = ShardSampler(shardTokenCounts: [trainEnd], seqLen: seqLen, seed: seed)
        validationSlots = ShardSampler(shardTokenCounts: [total - trainEnd], seqLen: seqLen, seed: seed)
        guard trainSampler.totalSlots > 0 else {
            throw IndexedDatasetError(file: reader.binPath, message: "its training split holds \(trainEnd) tokens, fewer than one window of seq_len + 1 = \(seqLen + 1)")
        }
    }

    public var trainTokens: Int { trainEnd }
    public var validationTokens: Int { reader.tokenCount - trainEnd }
    public var validationWindows: Int { validationSlots.totalSlots }

    public func trainWindow(seed: UInt64, index: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) throws {
        try window(at: trainSampler.location(forSequence: index).offset, tokens, targets)
    }

    public func validationWindow(_ i: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) throws {
        try window(at: trainEnd + validationSlots.location(ofSlot: i).offset, tokens, targets)
    }

    private func window(at offset: Int, _ tokens: UnsafeMutablePointer<TokenID>, _ targets: UnsafeMutablePointer<TokenID>) throws {
        var w = [TokenID](repeating: 0, count: seqLen + 1)
        try w.withUnsafeMutableBufferPointer { try reader.read(tokenOffset: offset, count: seqLen + 1, into: $0.baseAddress!) }
        w.withUnsafeBufferPointer {
            tokens.update(from: $0.baseAddress!, count: seqLen)
            targets.update(from: $0.baseAddress! + 1, count: seqLen)
        }
    }
}

/// Several datasets sampled by weight (`data.mix`): global sequence g is
/// sequence j of source k as `MixtureSchedule` says, and source k's own
/// sampler gives the window — so a resumed or resharded run reads the same
/// sequences. The held-out windows are the sources' in turn.
public struct MixtureSource: TrainingSource, @unchecked Sendable {
    public let sources: [IndexedTokenSource]
    public let names: [String]
    public let schedule: MixtureSchedule
    let validationStarts: [Int]

    public init(sources: [IndexedTokenSource], names: [String], schedule: MixtureSchedule) {
        self.sources = sources
        self.names = names
        self.schedule = schedule
        var starts = [0]
        for s in sources { starts.append(starts.last! + s.validationWindows) }
        validationStarts = starts
    }

    public var seqLen: Int { sources[0].seqLen }
    public var trainTokens: Int { sources.reduce(0) { $0 + $1.trainTokens } }
    public var validationTokens: Int { sources.reduce(0) { $0 + $1.validationTokens } }
    public var validationWindows: Int { validationStarts.last! }

    public func trainWindow(seed: UInt64, index: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) throws {
        let (k, j) = schedule.source(ofSequence: index)
        try sources[k].trainWindow(seed: seed, index: j, tokens: tokens, targets: targets)
    }

    public func validationWindow(_ i: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) throws {
        let k = validationSource(ofWindow: i)
        try sources[k].validationWindow(i - validationStarts[k], tokens: tokens, targets: targets)
    }

    func validationSource(ofWindow i: Int) -> Int { (0..<sources.count).last { validationStarts[$0] <= i } ?? 0 }

    public var heldOutMeasure: HeldOutMeasure {
        .tokenLossBySource(names: names, windows: (0..<sources.count).map { validationStarts[$0]..<validationStarts[$0 + 1] }, schedule: schedule)
    }
}
