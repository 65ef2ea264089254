import Foundation

/// Llama 2's tokenizer: SentencePiece BPE, encoding and decoding as the
/// SentencePiece library does for a BPE model — spaces escaped to "▁" and a
/// dummy "▁" prefixed, then repeatedly the adjacent pair whose merged piece
/// scores highest is merged (the leftmost on a tie), then every symbol left
/// that is not a piece falls back to its UTF-8 bytes as <0xNN> pieces (or
/// the unknown id without byte fallback).
public struct SentencePieceTokenizer: Tokenizer {
    public var kind: String { "sentencepiece" }
    public let model: SentencePieceModel
    /// Pieces that may result from a merge (normal, user-defined, unused) → id.
    let mergeable: PieceTable
    /// Every piece → id (for the symbols that are never merged).
    let all: PieceTable
    let byteIDs: [Int32]   // <0xNN> → id, or -1
    /// Scores and whether a piece is the unknown one, apart from the pieces'
    /// strings (reading a Piece would retain its String on the hot path).
    let scores: [Float]
    let isUnknown: [Bool]
    /// Whether text may be cut before a run of spaces that follows a word
    /// (no piece holds a space after anything else), and the ASCII bytes
    /// found in no multi-character piece (a cut may go either side of them):
    /// where `SentencePieceEncoder` may cut a text into segments.
    let segmentsAtSpaces: Bool
    let isolatedByte: [Bool]
    let hasIsolatedBytes: Bool

    public var vocabSize: Int { model.pieces.count }
    public var bosID: TokenID { TokenID(model.bosID) }
    public var eosID: TokenID { TokenID(model.eosID) }
    public var unkID: TokenID { TokenID(model.unkID) }

    public init(path: String) throws { try self.init(model: SentencePieceModel(path: path)) }

    public init(model: SentencePieceModel) {
        self.model = model
        var mergeable: [(String, Int32)] = [], all: [(String, Int32)] = []
        var bytes = [Int32](repeating: -1, count: 256)
        for (i, p) in model.pieces.enumerated() {
            all.append((p.text, Int32(i)))
            switch p.type {
            case .normal, .userDefined, .unused: mergeable.append((p.text, Int32(i)))
            case .byte:
                if p.text.count == 6, p.text.hasPrefix("<0x"), let v = UInt8(p.text.dropFirst(3).prefix(2), radix: 16) { bytes[Int(v)] = Int32(i) }
            default: break
            }
        }
        scores = model.pieces.map(\.score)
        isUnknown = model.pieces.map { $0.type == .unknown }
        self.mergeable = PieceTable(mergeable)
        self.all = PieceTable(all)
        byteIDs = bytes
        let space = model.escapeWhitespaces ? "\u{2581}" : " "
        var isolated = [Bool](repeating: false, count: 128)
        for b in 0..<128 where !(model.escapeWhitespaces && b == 0x20) { isolated[b] = true }
        var spaceAfterOther = false
        for (text, _) in mergeable {
            let chars = Array(text.unicodeScalars)
            if chars.count > 1 { for c in chars where c.value < 128 { isolated[Int(c.value)] = false } }
            if let firstOther = chars.firstIndex(where: { String($0) != space }),
               chars[firstOther...].contains(where: { String($0) == space }) { spaceAfterOther = true }
        }
        segmentsAtSpaces = model.escapeWhitespaces && !spaceAfterOther
        isolatedByte = isolated
        hasIsolatedBytes = isolated.contains(true)
    }

    public func encode(_ text: String, bos: Bool, eos: Bool) -> [TokenID] {
        (bos ? [bosID] : []) + encodePieces(text) + (eos ? [eosID] : [])
    }

    public func encode(_ text: String) throws(TokenizerError) -> [TokenID] { encodePieces(text) }

    func encodePieces(_ text: String) -> [TokenID] { SentencePieceEncoder(self, cacheEntries: 0).encode(text) }

    /// Pieces back to text: "▁" is a space, the dummy prefix's space is
    /// dropped, <0xNN> pieces are reassembled into UTF-8, control pieces
    /// (BOS, EOS) vanish and the unknown piece reads " ⁇ ".
    public func decode(_ ids: [TokenID]) -> String {
        var bytes: [UInt8] = []
        var first = true
        for id in ids where id >= 0 && Int(id) < model.pieces.count {
            let p = model.pieces[Int(id)]
            switch p.type {
            case .control: continue
            case .unknown: bytes += Array(" ⁇ ".utf8)
            case .byte:
                if let v = UInt8(p.text.dropFirst(3).prefix(2), radix: 16) { bytes.append(v) }
            default:
                var t = model.escapeWhitespaces ? p.text.replacingOccurrences(of: "▁", with: " ") : p.text
                if first && model.addDummyPrefix && t.hasPrefix(" ") { t.removeFirst() }
                bytes += Array(t.utf8)
            }
            first = false
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A max-heap of candidate merges: highest score first, then leftmost.
struct PairHeap {
    struct Pair { var score: Float; var left: Int; var right: Int; var size: Int }
    var items: [Pair] = []

    static func above(_ a: Pair, _ b: Pair) -> Bool { a.score > b.score || (a.score == b.score && a.left < b.left) }

    mutating func push(_ p: Pair) {
        items.append(p)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.above(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Pair? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var best = i
                if l < items.count && Self.above(items[l], items[best]) { best = l }
                if r < items.count && Self.above(items[r], items[best]) { best = r }
                if best == i { break }
                items.swapAt(i, best)
                i = best
            }
        }
        return top
    }
}
