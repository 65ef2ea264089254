import Foundation

/// The per-file checksum of checkpoints and token shards: FNV-1a's
/// xor-multiply step applied to 64-bit little-endian words (then the tail
/// bytes as one word, then the length), eight times faster than byte-wise
/// FNV-1a and, the multiply being a bijection, changed by any change within
/// one word. Computed while writing, and again by `verify`.
public struct Checksum64: Sendable, Equatable {
    private var h: UInt64 = 0xCBF2_9CE4_8422_2325
    private var carry: UInt64 = 0
    private var carried = 0
    private var length: UInt64 = 0
    public init() {}

    @inline(__always) private mutating func mix(_ w: UInt64) { h = (h ^ w) &* 0x0000_0100_0000_01B3 }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        length &+= UInt64(n)
        var i = 0
        while carried > 0 && i < n {
            carry |= UInt64(bytes[i]) << UInt64(8 * carried)
            carried += 1; i += 1
            if carried == 8 { mix(carry); carry = 0; carried = 0 }
        }
        while i + 8 <= n {
            mix(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            i += 8
        }
        while i < n {
            carry |= UInt64(bytes[i]) << UInt64(8 * carried)
            carried += 1; i += 1
        }
    }

    public var value: UInt64 {
        var c = self
        if c.carried > 0 { c.mix(c.carry) }
        c.mix(c.length)
        return c.h
    }

    public var hex: String { String(format: "%016llx", value) }

    /// The checksum of a whole file; nil when it cannot be opened (each caller names that in its own terms).
    public static func ofFile(_ path: String) -> Checksum64? {
        guard let h = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? h.close() }
        var f = Checksum64()
        while true {
            let d = h.readData(ofLength: 1 << 20)
            if d.isEmpty { break }
            d.withUnsafeBytes { f.update($0) }
        }
        return f
    }
}
