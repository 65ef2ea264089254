import Foundation

/// One training sequence of packed demonstrations: T inputs, T targets,
/// the targets of every token that is not an assistant answer set to the
/// ignore index, and how many targets count.
public struct PackedSequence: Sendable, Equatable {
    public var tokens: [TokenID]
    public var targets: [TokenID]
    public var counted: Int

    /// The inputs and targets of a stream of (up to T + 1) tokens: token i
    /// predicts token i + 1, which is learned only when `supervised[i + 1]`
    /// (an assistant answer's token or its EOS). Short streams are padded.
    public init(stream: [TokenID], supervised: [Bool], seqLen T: Int) {
        let n = min(T, stream.count)
        tokens = Array(stream.prefix(n)) + [TokenID](repeating: 0, count: T - n)
        targets = Self.targets(next: Array(stream.dropFirst().prefix(T)), learned: Array(supervised.dropFirst().prefix(T)))
        targets += [TokenID](repeating: CrossEntropy.ignoreIndex, count: T - targets.count)
        counted = targets.reduce(0) { $0 + ($1 == CrossEntropy.ignoreIndex ? 0 : 1) }
    }

    /// The loss mask: each position's next token where it is learned, the
    /// ignore index elsewhere (so a user or system token's target never counts).
    public static func targets(next: [TokenID], learned: [Bool]) -> [TokenID] {
        zip(next, learned).map { $1 ? $0 : CrossEntropy.ignoreIndex }
    }
}

/// Supervised fine-tuning data: demonstrations in the chat format, packed
/// whole and in order into sequences of seq_len + 1 tokens (an example that
/// does not fit starts the next sequence; one longer than a sequence is cut
/// at its end). Each example starts with the separator token, where the
/// model's attention starts afresh (`Activations.separator`): a packed
/// example never attends to another. Epochs visit the sequences in an
/// order permuted by (seed, epoch).
public struct DemonstrationDataset: TrainingSource {
    public let seqLen: Int
    public let train: [PackedSequence]
    public let validation: [PackedSequence]
    /// Examples cut because they are longer than a sequence.
    public let truncated: Int
    /// The token that starts every packed example.
    public let separator: TokenID
    public var packingSeparator: TokenID? { separator }

    /// The separator of packed examples: SentencePiece's unknown piece (an
    /// input only; it is never a target), or U+001E (record separator) for
    /// byte- and char-level tokenizers. A char vocabulary must hold it.
    public static func separator(for t: any Tokenizer) throws -> TokenID {
        if let spm = t as? SentencePieceTokenizer { return spm.unkID }
        let ids = try t.encode("\u{1E}")
        guard ids.count == 1 else { throw TokenizerError.badVocabulary("no single token for the packing separator U+001E") }
        return ids[0]
    }

    public init(train: [Demonstration], validation: [Demonstration], tokenizer: any Tokenizer, seqLen: Int) throws {
        self.seqLen = seqLen
        separator = try Self.separator(for: tokenizer)
        let (t, cutTrain) = try Self.pack(train, tokenizer: tokenizer, separator: separator, seqLen: seqLen)
        let (v, cutValidation) = try Self.pack(validation, tokenizer: tokenizer, separator: separator, seqLen: seqLen)
        self.train = t
        self.validation = v
        truncated = cutTrain + cutValidation
    }

    static func pack(_ examples: [Demonstration], tokenizer: any Tokenizer, separator: TokenID, seqLen T: Int) throws -> ([PackedSequence], Int) {
        var out: [PackedSequence] = []
        var stream: [TokenID] = [], supervised: [Bool] = []
        var cut = 0
        func close() {
            if supervised.contains(true) { out.append(PackedSequence(stream: stream, supervised: supervised, seqLen: T)) }
            stream = []; supervised = []
        }
        for e in examples {
            let (encoded, learned) = try e.encoded(tokenizer: tokenizer)
            let tokens = [separator] + encoded, mask = [false] + learned
            if stream.count + tokens.count > T + 1 { close() }
            if tokens.count > T + 1 { cut += 1 }
            let n = min(tokens.count, T + 1)
            stream += tokens[..<n]
            supervised += mask[..<n]
        }
        close()
        return (out, cut)
    }

    public var trainTokens: Int { train.count * seqLen }
    public var validationTokens: Int { validation.count * seqLen }
    public var validationWindows: Int { validation.count }

    /// Sequence `index` of the run, in its epoch's order.
    func sequence(seed: UInt64, index: Int) -> PackedSequence {
        train[EpochOrder.item(seed: seed, index: index, count: train.count)]
    }

    public func trainWindow(seed: UInt64, index: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) throws {
        let s = sequence(seed: seed, index: index)
        s.tokens.withUnsafeBufferPointer { tokens.update(from: $0.baseAddress!, count: seqLen) }
        s.targets.withUnsafeBufferPointer { targets.update(from: $0.baseAddress!, count: seqLen) }
    }

    public func trainTargetCount(seed: UInt64, index: Int) -> Int { sequence(seed: seed, index: index).counted }

    public func validationWindow(_ i: Int, tokens: UnsafeMutablePointer<TokenID>, targets: UnsafeMutablePointer<TokenID>) throws {
        validation[i].tokens.withUnsafeBufferPointer { tokens.update(from: $0.baseAddress!, count: seqLen) }
        validation[i].targets.withUnsafeBufferPointer { targets.update(from: $0.baseAddress!, count: seqLen) }
    }
}
