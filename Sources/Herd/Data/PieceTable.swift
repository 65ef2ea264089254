/// Byte string → id, looked up straight from a span of UTF-8 bytes (no
/// String is made per lookup): open addressing over FNV-1a hashes, the
/// pieces' bytes stored back to back. The SentencePiece encoder looks up
/// every candidate merge, so this is its hot path.
struct PieceTable: Sendable {
    private var bytes: [UInt8] = []
    private var slots: [Int32]                       // index into entries, or -1
    private var entries: [(offset: Int, length: Int, id: Int32)] = []
    private let mask: Int

    init(_ pieces: [(String, Int32)]) {
        var size = 16
        while size < 2 * pieces.count { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
        for (text, id) in pieces {
            let u = Array(text.utf8)
            if u.withUnsafeBufferPointer({ find($0.baseAddress!, u.count) }) != nil { continue }   // first id wins
            entries.append((bytes.count, u.count, id))
            bytes += u
            var i = Int(truncatingIfNeeded: u.withUnsafeBufferPointer { Self.hash($0.baseAddress!, u.count) }) & mask
            while slots[i] >= 0 { i = (i + 1) & mask }
            slots[i] = Int32(entries.count - 1)
        }
    }

    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for i in 0..<n { h = (h ^ UInt64(p[i])) &* 0x0000_0100_0000_01B3 }
        return h
    }

    @inline(__always)
    func find(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32? {
        var i = Int(truncatingIfNeeded: Self.hash(p, n)) & mask
        return bytes.withUnsafeBufferPointer { b in
            while true {
                let s = slots[i]
                if s < 0 { return nil }
                let e = entries[Int(s)]
                if e.length == n && memcmp(b.baseAddress! + e.offset, p, n) == 0 { return e.id }
                i = (i + 1) & mask
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
