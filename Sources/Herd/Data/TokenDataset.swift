/// A tokenized corpus split into a training head and a held-out tail
/// (nanoGPT's first 90% / last 10%), with the batches drawn from each.
public struct TokenDataset: Sendable {
    public let train: [TokenID]
    public let validation: [TokenID]
    public let seqLen: Int

    public init(tokens: [TokenID], validationFraction: Double, seqLen: Int) {
        let cut = Int((Double(tokens.count) * (1 - validationFraction)).rounded(.down))
        train = Array(tokens[..<cut])
        validation = Array(tokens[cut...])
        self.seqLen = seqLen
    }

    /// Training sequence number `index` of the run (a global counter of
    /// sequences consumed): a window at a pseudo-random offset that depends
    /// only on (seed, index), so the order of the data does not depend on how
    /// the batch is divided among micro-batches or ranks, and a resumed run
    /// continues the same stream.
    public func trainWindow(seed: UInt64, index: Int,
                            tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) {
        let span = train.count - seqLen - 1
        let start = Int(SplitMix64.mix(seed, UInt64(index)) % UInt64(max(span, 1)))
        train.withUnsafeBufferPointer { t in
            tokens.update(from: t.baseAddress! + start, count: seqLen)
            targets.update(from: t.baseAddress! + start + 1, count: seqLen)
        }
    }

    /// Number of non-overlapping held-out windows.
    public var validationWindows: Int { max((validation.count - 1) / seqLen, 0) }

    public func validationWindow(_ i: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) {
        validation.withUnsafeBufferPointer { t in
            tokens.update(from: t.baseAddress! + i * seqLen, count: seqLen)
            targets.update(from: t.baseAddress! + i * seqLen + 1, count: seqLen)
        }
    }
}
