/// bfloat16: the top 16 bits of an fp32, rounded to nearest even. Used for
/// storage (checkpoint weights, and Hugging Face's bf16 tensors); all
/// arithmetic stays fp32.
public enum BFloat16 {
    @inline(__always)
    public static func fromFloat(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(bits >> 16) | 0x40 }   // keep it a NaN
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16((bits &+ rounding) >> 16)
    }

    @inline(__always)
    public static func toFloat(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    /// Every value of p[0..<count] rounded to the nearest bf16 (kept as fp32).
    public static func round(_ p: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { p[i] = toFloat(fromFloat(p[i])) }
    }
}

/// A fixed-size array of bf16 values: activations kept for backward under
/// bf16 precision, half the bytes of their fp32 working copy.
public final class BFloat16Buffer: @unchecked Sendable {
    public let count: Int
    let base: UnsafeMutablePointer<UInt16>

    public init(count: Int) {
        self.count = count
        base = .allocate(capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { base.deallocate() }

    /// Stores `from` (bf16 values held as fp32: exact).
    public func store(_ from: UnsafePointer<Float>) {
        for i in 0..<count { base[i] = BFloat16.fromFloat(from[i]) }
    }

    /// Widens the stored values into `into`.
    public func load(into: UnsafeMutablePointer<Float>) {
        for i in 0..<count { into[i] = BFloat16.toFloat(base[i]) }
    }
}
