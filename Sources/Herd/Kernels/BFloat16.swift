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
}
