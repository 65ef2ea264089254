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
    }

    public func encode(_ text: String, bos: Bool, eos: Bool) -> [TokenID] {
        (bos ? [bosID] : []) + encodePieces(text) + (eos ? [eosID] : [])
    }

    public func encode(_ text: String) throws(TokenizerError) -> [TokenID] { encodePieces(text) }

    func encodePieces(_ text: String) -> [TokenID] {
        if text.isEmpty { return [] }
        var normalized = model.escapeWhitespaces ? text.replacingOccurrences(of: " ", with: "▁") : text
        if model.addDummyPrefix { normalized = (model.escapeWhitespaces ? "▁" : " ") + normalized }
        // Symbols: one per character, as byte ranges of the UTF-8 text, in a linked list.
        let utf8 = Array(normalized.utf8)
        var start: [Int] = [], end: [Int] = []
        var i = 0
        while i < utf8.count {
            let b = utf8[i]
            let n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4
            start.append(i); end.append(min(i + n, utf8.count))
            i += n
        }
        let count = start.count
        var prev = Array(-1..<(count - 1)), next = Array(1...count)
        next[count - 1] = -1
        var alive = [Bool](repeating: true, count: count)
        var heap = PairHeap()
        func lookup(_ table: PieceTable, _ a: Int, _ b: Int) -> Int32? {
            utf8.withUnsafeBufferPointer { table.find($0.baseAddress! + a, b - a) }
        }
        func consider(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0, let id = lookup(mergeable, start[l], end[r]) else { return }
            heap.push(.init(score: scores[Int(id)], left: l, right: r, size: end[r] - start[l]))
        }
        for s in 0..<(count - 1) { consider(s, s + 1) }
        while let top = heap.pop() {
            // Skip pairs made stale by an earlier merge.
            guard alive[top.left], alive[top.right], next[top.left] == top.right,
                  end[top.right] - start[top.left] == top.size else { continue }
            end[top.left] = end[top.right]
            alive[top.right] = false
            next[top.left] = next[top.right]
            if next[top.right] >= 0 { prev[next[top.right]] = top.left }
            consider(prev[top.left], top.left)
            consider(top.left, next[top.left])
        }
        var out: [TokenID] = []
        var s = 0
        while s >= 0 && s < count {
            if alive[s] {
                if let id = lookup(all, start[s], end[s]), !isUnknown[Int(id)] {
                    out.append(TokenID(id))
                } else if model.byteFallback {
                    for b in utf8[start[s]..<end[s]] {
                        let id = byteIDs[Int(b)]
                        out.append(id >= 0 ? TokenID(id) : unkID)
                    }
                } else {
                    out.append(unkID)
                }
            }
            s = next[s]
        }
        return out
    }

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
