/// Encodes text with a SentencePiece BPE model as fast as the corpus allows,
/// with the ids the SentencePiece library gives: the text is cut into
/// segments that no merge can cross, each segment is merged on its own, and
/// a segment seen before is not merged again (a cache).
///
/// Why segments are exact: BPE merges a pair only into a piece of the model,
/// and a pair's merge never depends on symbols outside the pair. If no piece
/// holds a non-space character followed by a space ("▁"), no merged symbol
/// can span the start of a run of spaces that follows a word, so the text
/// falls apart there into parts that merge independently; the same holds on
/// both sides of a character that occurs in no multi-character piece (Llama
/// 2's "\n"). Cutting more coarsely is always exact, so a model without that
/// property is encoded as one segment per document.
///
/// An encoder takes a document in chunks (`encode(_:first:last:into:)`) cut
/// anywhere: it carries the unfinished last segment of a chunk into the
/// next, so memory is the chunk plus the longest segment. Not thread-safe:
/// one encoder per thread (they are cheap; the cache is what grows).
public final class SentencePieceEncoder {
    public let tokenizer: SentencePieceTokenizer
    // Unchecked exclusivity: these are touched on every segment, and the
    // runtime's access checks cost ~15% of encoding; an encoder is used by
    // one thread and never hands these out (its methods are not reentrant).
    @exclusivity(unchecked) private var carry: [UInt8] = []
    @exclusivity(unchecked) private var documentStarted = false
    private let cache: SegmentCache?
    @exclusivity(unchecked) private var merger = SegmentMerger()
    // The tokenizer's segmentation facts, copied out of it: reading them
    // through the struct on the hot path retains and releases its arrays.
    private let addDummyPrefix: Bool
    private let segmentsAtSpaces: Bool
    private let segments: Bool
    private let isolated: UnsafeMutablePointer<Bool>

    /// `cacheEntries`: segments remembered (0: none, as for one-off texts).
    public init(_ tokenizer: SentencePieceTokenizer, cacheEntries: Int = 1 << 18) {
        self.tokenizer = tokenizer
        cache = cacheEntries > 0 ? SegmentCache(entries: cacheEntries) : nil
        addDummyPrefix = tokenizer.model.addDummyPrefix
        segmentsAtSpaces = tokenizer.segmentsAtSpaces
        segments = tokenizer.segmentsAtSpaces || tokenizer.hasIsolatedBytes
        isolated = .allocate(capacity: 256)
        for b in 0..<256 { isolated[b] = b < 128 && tokenizer.isolatedByte[b] }
    }

    deinit { isolated.deallocate() }

    /// Appends the ids of one chunk of a document's UTF-8 text to `out`
    /// (no BOS/EOS: the caller frames documents). `first` starts a document
    /// (the dummy prefix goes before it); `last` ends it (everything carried
    /// is flushed).
    public func encode(_ chunk: UnsafeBufferPointer<UInt8>, first: Bool, last: Bool, into out: inout [TokenID]) {
        if first { carry.removeAll(keepingCapacity: true); documentStarted = false }
        if carry.isEmpty && last {
            segment(chunk, last: true, into: &out)
            return
        }
        carry.append(contentsOf: chunk)
        let consumed = carry.withUnsafeBufferPointer { segment($0, last: last, into: &out) }
        carry.removeSubrange(0..<consumed)
    }

    /// The whole text as one document (no BOS/EOS).
    public func encode(_ text: String) -> [TokenID] {
        var out: [TokenID] = []
        var t = text
        t.withUTF8 { encode($0, first: true, last: true, into: &out) }
        return out
    }

    /// Emits every complete segment of `buf` and returns how many bytes it
    /// consumed (all of them when `last`).
    @discardableResult
    private func segment(_ buf: UnsafeBufferPointer<UInt8>, last: Bool, into out: inout [TokenID]) -> Int {
        let n = buf.count
        guard n > 0, let p = buf.baseAddress else { return 0 }
        var start = 0
        if segments {
            // A space may be "▁" itself (three bytes), so the last two bytes
            // of an unfinished chunk are left for the next one to judge.
            let limit = last ? n : n - 2
            var prevSpace = false, prevIsolated = false
            var i = 0
            while i < limit {
                let b = p[i]
                if b & 0xC0 == 0x80 { i += 1; continue }   // inside a character
                let isSpace = b == 0x20 || (b == 0xE2 && i + 2 < n && p[i + 1] == 0x96 && p[i + 2] == 0x81)
                let isolated = self.isolated[Int(b)]
                if i > start && ((segmentsAtSpaces && isSpace && !prevSpace) || isolated || prevIsolated) {
                    emit(UnsafeBufferPointer(start: p + start, count: i - start), into: &out)
                    start = i
                }
                prevSpace = isSpace
                prevIsolated = isolated
                i += 1
            }
        }
        guard last else { return start }
        emit(UnsafeBufferPointer(start: p + start, count: n - start), into: &out)
        return n
    }

    /// One segment's ids: from the cache, or merged (and remembered).
    private func emit(_ seg: UnsafeBufferPointer<UInt8>, into out: inout [TokenID]) {
        let prefixed = !documentStarted && addDummyPrefix
        documentStarted = true
        if seg.count <= SegmentCache.maxKeyBytes, let cache {
            let h = SegmentCache.hash(seg, seed: prefixed ? 1 : 0)
            if cache.append(hash: h, key: seg, prefixed: prefixed, to: &out) { return }
            let before = out.count
            merger.merge(seg, prefixed: prefixed, tokenizer: tokenizer, into: &out)
            out.withUnsafeBufferPointer { cache.insert(hash: h, key: seg, prefixed: prefixed, tokens: UnsafeBufferPointer(rebasing: $0[before...])) }
            return
        }
        merger.merge(seg, prefixed: prefixed, tokenizer: tokenizer, into: &out)
    }
}

/// SentencePiece's BPE on one segment, with its working arrays kept between
/// calls: spaces escaped to "▁" (and the dummy prefix when the segment
/// starts a document), one symbol per character, then repeatedly the
/// adjacent pair whose merged piece scores highest is merged (the leftmost
/// on a tie); a symbol left that is not a piece falls back to its bytes
/// (<0xNN>) or to the unknown id.
struct SegmentMerger {
    var text: [UInt8] = []
    var start: [Int32] = [], end: [Int32] = [], prev: [Int32] = [], next: [Int32] = []
    var heap = PairHeap()

    mutating func merge(_ seg: UnsafeBufferPointer<UInt8>, prefixed: Bool, tokenizer tok: SentencePieceTokenizer, into out: inout [TokenID]) {
        let escape = tok.model.escapeWhitespaces
        text.removeAll(keepingCapacity: true)
        if prefixed { if escape { text += [0xE2, 0x96, 0x81] } else { text.append(0x20) } }
        if escape {
            for b in seg { if b == 0x20 { text += [0xE2, 0x96, 0x81] } else { text.append(b) } }
        } else {
            text.append(contentsOf: seg)
        }
        if text.isEmpty { return }
        start.removeAll(keepingCapacity: true); end.removeAll(keepingCapacity: true)
        text.withUnsafeBufferPointer { u in
            var i = 0
            while i < u.count {
                let b = u[i]
                let n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4
                start.append(Int32(i)); end.append(Int32(min(i + n, u.count)))
                i += n
            }
        }
        let count = start.count
        if count == 1 {   // one character: nothing to merge
            emitSymbol(0, tok, &out)
            return
        }
        prev.removeAll(keepingCapacity: true); next.removeAll(keepingCapacity: true)
        for s in 0..<count { prev.append(Int32(s - 1)); next.append(Int32(s + 1)) }
        next[count - 1] = -1
        heap.items.removeAll(keepingCapacity: true)
        text.withUnsafeBufferPointer { u in
            let base = u.baseAddress!
            func consider(_ l: Int32, _ r: Int32) {
                guard l >= 0, r >= 0 else { return }
                let a = Int(start[Int(l)]), b = Int(end[Int(r)])
                guard let id = tok.mergeable.find(base + a, b - a) else { return }
                heap.push(.init(score: tok.scores[Int(id)], left: Int(l), right: Int(r), size: b - a))
            }
            for s in 0..<(count - 1) { consider(Int32(s), Int32(s + 1)) }
            while let top = heap.pop() {
                let l = top.left, r = top.right
                // Skip pairs made stale by an earlier merge (a dead symbol has start = -1).
                guard start[l] >= 0, start[r] >= 0, next[l] == Int32(r), Int(end[r] - start[l]) == top.size else { continue }
                end[l] = end[r]
                start[r] = -1
                next[l] = next[r]
                if next[r] >= 0 { prev[Int(next[r])] = Int32(l) }
                consider(prev[l], Int32(l))
                consider(Int32(l), next[l])
            }
        }
        var s: Int32 = 0
        while s >= 0 {
            emitSymbol(Int(s), tok, &out)
            s = next[Int(s)]
        }
    }

    private func emitSymbol(_ s: Int, _ tok: SentencePieceTokenizer, _ out: inout [TokenID]) {
        let a = Int(start[s]), b = Int(end[s])
        text.withUnsafeBufferPointer { u in
            if let id = tok.all.find(u.baseAddress! + a, b - a), !tok.isUnknown[Int(id)] {
                out.append(TokenID(id))
            } else if tok.model.byteFallback {
                for i in a..<b {
                    let id = tok.byteIDs[Int(u[i])]
                    out.append(id >= 0 ? TokenID(id) : tok.unkID)
                }
            } else {
                out.append(tok.unkID)
            }
        }
    }
}

/// Segment bytes (and whether the dummy prefix went before them) → their
/// ids, in open addressing with the keys and ids stored back to back.
/// When full it starts afresh: a corpus's frequent words come back at once.
/// A class: the encoder reaches it on every segment without copying it.
/// Its tables are raw buffers, not arrays: a lookup then neither retains
/// nor checks exclusive access (one thread owns a cache, as its encoder).
final class SegmentCache {
    static let maxKeyBytes = 48
    private struct Entry { var hash: UInt64; var key: Int32; var keyLength: Int32; var ids: Int32; var idCount: Int32 }
    @exclusivity(unchecked) private var slots: RawBuffer<Int32>
    @exclusivity(unchecked) private var entries = RawBuffer<Entry>()
    @exclusivity(unchecked) private var keys = RawBuffer<UInt8>()
    @exclusivity(unchecked) private var ids = RawBuffer<TokenID>()
    private let capacity: Int
    @exclusivity(unchecked) private var mask: Int

    /// The table starts small and doubles as it fills (at most half full):
    /// a corpus with few distinct words keeps its cache in the core's own
    /// cache lines, which matters most when ranks share a machine.
    init(entries: Int) {
        capacity = max(entries, 16)
        let size = min(1 << 12, Self.slotCount(for: capacity))
        slots = RawBuffer(repeating: -1, count: size)
        mask = size - 1
    }

    deinit { slots.free(); entries.free(); keys.free(); ids.free() }

    static func slotCount(for entries: Int) -> Int {
        var size = 16
        while size < 2 * entries { size <<= 1 }
        return size
    }

    private func grow() {
        let size = 2 * slots.count
        slots.free()
        slots = RawBuffer(repeating: -1, count: size)
        mask = size - 1
        for n in 0..<entries.count {
            var i = Int(truncatingIfNeeded: entries[n].hash) & mask
            while slots[i] >= 0 { i = (i + 1) & mask }
            slots[i] = Int32(n)
        }
    }

    @inline(__always)
    static func hash(_ k: UnsafeBufferPointer<UInt8>, seed: UInt64) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ seed &+ UInt64(k.count)
        var i = 0
        let p = UnsafeRawPointer(k.baseAddress!)
        while i + 8 <= k.count {
            h = (h ^ p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            i += 8
        }
        var tail: UInt64 = 0, shift: UInt64 = 0
        while i < k.count { tail |= UInt64(k[i]) << shift; shift += 8; i += 1 }
        h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        return h ^ (h >> 29)
    }

    /// Appends the cached ids of `key` and returns true, or returns false.
    @inline(__always)
    func append(hash: UInt64, key: UnsafeBufferPointer<UInt8>, prefixed: Bool, to out: inout [TokenID]) -> Bool {
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let s = slots[i]
            if s < 0 { return false }
            let e = entries[Int(s)]
            if e.hash == hash && Int(e.keyLength) == key.count + 1 {
                let k = keys.base + Int(e.key)
                if k[0] == (prefixed ? 1 : 0) && memcmp(k + 1, key.baseAddress!, key.count) == 0 {
                    out.append(contentsOf: UnsafeBufferPointer(start: ids.base + Int(e.ids), count: Int(e.idCount)))
                    return true
                }
            }
            i = (i + 1) & mask
        }
    }

    func insert(hash: UInt64, key: UnsafeBufferPointer<UInt8>, prefixed: Bool, tokens: UnsafeBufferPointer<TokenID>) {
        if entries.count >= capacity {
            for i in 0..<slots.count { slots[i] = -1 }
            entries.count = 0; keys.count = 0; ids.count = 0
        } else if 2 * (entries.count + 1) > slots.count {
            grow()
        }
        var i = Int(truncatingIfNeeded: hash) & mask
        while slots[i] >= 0 { i = (i + 1) & mask }
        slots[i] = Int32(entries.count)
        entries.append(Entry(hash: hash, key: Int32(keys.count), keyLength: Int32(key.count + 1), ids: Int32(ids.count), idCount: Int32(tokens.count)))
        keys.append(prefixed ? 1 : 0)
        keys.append(contentsOf: key)
        ids.append(contentsOf: tokens)
    }
}

/// A growable buffer of trivial values the owner frees: what SegmentCache
/// keeps its tables in (reading one is a load, with no reference count).
struct RawBuffer<T> {
    private(set) var base: UnsafeMutablePointer<T>
    var count = 0
    private var capacity: Int

    init() { base = .allocate(capacity: 16); capacity = 16 }

    init(repeating value: T, count: Int) {
        base = .allocate(capacity: count)
        base.initialize(repeating: value, count: count)
        self.count = count; capacity = count
    }

    subscript(i: Int) -> T {
        @inline(__always) get { base[i] }
        @inline(__always) nonmutating set { base[i] = newValue }
    }

    mutating func append(_ v: T) {
        reserve(count + 1)
        (base + count).initialize(to: v)
        count += 1
    }

    mutating func append(contentsOf v: UnsafeBufferPointer<T>) {
        guard let src = v.baseAddress, !v.isEmpty else { return }
        reserve(count + v.count)
        (base + count).initialize(from: src, count: v.count)
        count += v.count
    }

    private mutating func reserve(_ n: Int) {
        guard n > capacity else { return }
        var c = capacity
        while c < n { c *= 2 }
        let b = UnsafeMutablePointer<T>.allocate(capacity: c)
        b.moveInitialize(from: base, count: count)
        base.deallocate()
        base = b; capacity = c
    }

    func free() { base.deallocate() }
}

#if canImport(Glibc)
import Glibc
#endif
