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
