/// UTF-8 checks on raw bytes, for the readers: the tokenizer downstream
/// assumes valid UTF-8, and a corpus is too large to go through String.
enum UTF8Validation {
    /// Every byte of the word is ASCII (high bit clear).
    static let highBits: UInt64 = 0x8080_8080_8080_8080

    /// The length of the well-formed UTF-8 sequence starting at p[i] (whose
    /// lead byte is ≥ 0x80), or 0 if it is not one (bad lead byte, bad or
    /// missing continuation, overlong form, surrogate, above U+10FFFF), per
    /// the table of Unicode 15 §3.9 (D92).
    @inline(__always)
    static func sequenceLength(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> Int {
        let b0 = p[i]
        @inline(__always) func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
            i + k < n && p[i + k] >= lo && p[i + k] <= hi
        }
        switch b0 {
        case 0xC2...0xDF:
            return cont(1) ? 2 : 0
        case 0xE0:
            return cont(1, 0xA0) && cont(2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF:
            return cont(1) && cont(2) ? 3 : 0
        case 0xED:   // U+D000–U+D7FF; the surrogates U+D800–U+DFFF are not UTF-8
            return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0
        case 0xF0:
            return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0
        case 0xF1...0xF3:
            return cont(1) && cont(2) && cont(3) ? 4 : 0
        case 0xF4:
            return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0
        default:
            return 0
        }
    }

    /// The index of the first byte of `[0, n)` that does not start a
    /// well-formed sequence, or nil if all of it is valid UTF-8. A sequence
    /// cut by the end counts as invalid at its lead byte.
    static func firstInvalid(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i < n {
            // Eight ASCII bytes at a time: text is mostly ASCII.
            while i + 8 <= n, raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) & highBits == 0 {
                i += 8
            }
            if i >= n { break }
            if p[i] < 0x80 {
                i += 1
                continue
            }
            let len = sequenceLength(p, i, n)
            if len == 0 { return i }
            i += len
        }
        return nil
    }
}
