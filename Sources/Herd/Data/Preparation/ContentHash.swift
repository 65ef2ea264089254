/// A 128-bit hash of a document's text for exact deduplication, the same
/// however the text is cut into chunks: two independent 64-bit lanes over
/// little-endian words (a multiply-rotate-multiply round each, as
/// MurmurHash3's body), then the length and a finalising mix. At a billion
/// documents the chance of any collision is about 10⁻²¹ — a 64-bit hash
/// would give ~3%.
public struct ContentHash: Sendable, Hashable, Codable {
    public var high: UInt64
    public var low: UInt64

    public struct Hasher {
        private var h1: UInt64 = 0x9E37_79B9_7F4A_7C15
        private var h2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
        private var carry: UInt64 = 0
        private var carried = 0
        private var length: UInt64 = 0
        public init() {}

        @inline(__always) private mutating func mix(_ w: UInt64) {
            h1 = ((h1 ^ (w &* 0x87C3_7B91_1142_53D5)).rotated(31)) &* 0x4CF5_AD43_2745_937F
            h2 = ((h2 ^ (w &* 0x4CF5_AD43_2745_937F)).rotated(33)) &* 0x87C3_7B91_1142_53D5 &+ h1
        }

        public mutating func update(_ bytes: UnsafeBufferPointer<UInt8>) {
            let n = bytes.count
            guard n > 0, let base = bytes.baseAddress else { return }
            length &+= UInt64(n)
            var i = 0
            while carried > 0 && i < n {
                carry |= UInt64(base[i]) << UInt64(8 * carried)
                carried += 1; i += 1
                if carried == 8 { mix(carry); carry = 0; carried = 0 }
            }
            let raw = UnsafeRawPointer(base)
            while i + 8 <= n {
                mix(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                i += 8
            }
            while i < n { carry |= UInt64(base[i]) << UInt64(8 * carried); carried += 1; i += 1 }
        }

        public func finish() -> ContentHash {
            var a = h1, b = h2
            if carried > 0 { a ^= carry &* 0x9E37_79B9_7F4A_7C15; b ^= carry }
            a ^= length; b ^= length &* 0xFF51_AFD7_ED55_8CCD
            a = a &+ b; b = b &+ a
            a = fmix(a); b = fmix(b)
            return ContentHash(high: a &+ b, low: b &+ a &+ b)
        }

        private func fmix(_ x: UInt64) -> UInt64 {
            var k = x
            k ^= k >> 33; k = k &* 0xFF51_AFD7_ED55_8CCD
            k ^= k >> 33; k = k &* 0xC4CE_B9FE_1A85_EC53
            return k ^ (k >> 33)
        }
    }
}

extension UInt64 {
    @inline(__always) func rotated(_ r: UInt64) -> UInt64 { (self << r) | (self >> (64 - r)) }
}
