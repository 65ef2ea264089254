/// A branch-free exp for the kernels' hot loops (SiLU, softmax,
/// cross-entropy). Foundation's `expf` is a library call per element and
/// blocks vectorisation; this is the Cephes range reduction with a degree-5
/// polynomial (about 2 ulp), written with plain Float and bit operations so
/// that LLVM vectorises the loops that call it. Swift's generic SIMD types
/// were tried first: their rounding and conversions compile to per-lane calls.
public enum FastMath {
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        // Clamp to the range where the result is a normal float (or rounds to 0/inf).
        let xc = Swift.min(Swift.max(x, -87.3), 88.3)
        // n = round(x / ln 2) by the 1.5·2²³ trick: adding it leaves the
        // integer in the low mantissa bits.
        let magic: Float = 12582912
        let t = xc * 1.44269504088896341 + magic
        let n = t - magic
        // r = x − n·ln 2, with ln 2 split in two for precision
        var r = xc - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p: Float = 1.9875691500e-4
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let e = p * (r * r) + r + 1
        // 2ⁿ from the exponent bits: bits(t) − bits(magic) = n
        let ni = t.bitPattern &- 0x4B40_0000
        return e * Float(bitPattern: (ni &+ 127) &<< 23)
    }

    /// x[i] = exp(x[i] − shift) over `count` values; returns their sum.
    @inline(__always)
    public static func expShiftedSum(_ x: UnsafeMutablePointer<Float>, count: Int, shift: Float) -> Float {
        for i in 0..<count { x[i] = exp(x[i] - shift) }
        return sum(x, count: count)
    }

    /// Sum with 8 independent accumulators (a vectorisable reduction).
    @inline(__always)
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc = (Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0))
        var i = 0
        while i + 8 <= count {
            acc.0 += x[i]; acc.1 += x[i + 1]; acc.2 += x[i + 2]; acc.3 += x[i + 3]
            acc.4 += x[i + 4]; acc.5 += x[i + 5]; acc.6 += x[i + 6]; acc.7 += x[i + 7]
            i += 8
        }
        var s = ((acc.0 + acc.1) + (acc.2 + acc.3)) + ((acc.4 + acc.5) + (acc.6 + acc.7))
        while i < count { s += x[i]; i += 1 }
        return s
    }

    /// Σ a[i]·b[i] with 8 independent accumulators. A plain `s += a[i]*b[i]`
    /// loop stays scalar: without reassociation LLVM may not vectorise it.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var acc = (Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0))
        var i = 0
        while i + 8 <= count {
            acc.0 += a[i] * b[i]; acc.1 += a[i + 1] * b[i + 1]
            acc.2 += a[i + 2] * b[i + 2]; acc.3 += a[i + 3] * b[i + 3]
            acc.4 += a[i + 4] * b[i + 4]; acc.5 += a[i + 5] * b[i + 5]
            acc.6 += a[i + 6] * b[i + 6]; acc.7 += a[i + 7] * b[i + 7]
            i += 8
        }
        var s = ((acc.0 + acc.1) + (acc.2 + acc.3)) + ((acc.4 + acc.5) + (acc.6 + acc.7))
        while i < count { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// Four dot products, of `a` with b, b + stride, b + 2·stride and
    /// b + 3·stride: each summed exactly as `dot` sums it (the same eight
    /// lanes, the same final additions, so the same bits), the four chains
    /// of additions interleaved so that they overlap rather than wait on
    /// one another (attention's scores over a cache of short heads).
    @inline(__always)
    public static func dot4(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, stride: Int, count: Int) -> SIMD4<Float> {
        func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        let b1 = b + stride, b2 = b + 2 * stride, b3 = b + 3 * stride
        var i = 0
        while i + 8 <= count {
            let x = load(a + i)
            s0 += x * load(b + i); s1 += x * load(b1 + i); s2 += x * load(b2 + i); s3 += x * load(b3 + i)
            i += 8
        }
        func reduce(_ v: SIMD8<Float>) -> Float { ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])) }
        var r = SIMD4<Float>(reduce(s0), reduce(s1), reduce(s2), reduce(s3))
        while i < count {
            r[0] += a[i] * b[i]; r[1] += a[i] * b1[i]; r[2] += a[i] * b2[i]; r[3] += a[i] * b3[i]
            i += 1
        }
        return r
    }

    /// Σ g² in fp32 chunks of 4096 added up in Double (gradient norms:
    /// long buffers lose no precision, short chunks stay vectorised).
    public static func sumOfSquares(_ g: UnsafePointer<Float>, count: Int) -> Double {
        var total = 0.0
        let chunk = 4096
        var i = 0
        while i < count {
            let end = min(i + chunk, count)
            total += Double(dot(g + i, g + i, count: end - i))
            i = end
        }
        return total
    }

    /// Σ a[i]·b[i]·c[i], vectorisable as `dot` is.
    @inline(__always)
    public static func dot3(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
                            count: Int) -> Float {
        var acc = (Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0))
        var i = 0
        while i + 8 <= count {
            acc.0 += a[i] * b[i] * c[i]; acc.1 += a[i + 1] * b[i + 1] * c[i + 1]
            acc.2 += a[i + 2] * b[i + 2] * c[i + 2]; acc.3 += a[i + 3] * b[i + 3] * c[i + 3]
            acc.4 += a[i + 4] * b[i + 4] * c[i + 4]; acc.5 += a[i + 5] * b[i + 5] * c[i + 5]
            acc.6 += a[i + 6] * b[i + 6] * c[i + 6]; acc.7 += a[i + 7] * b[i + 7] * c[i + 7]
            i += 8
        }
        var s = ((acc.0 + acc.1) + (acc.2 + acc.3)) + ((acc.4 + acc.5) + (acc.6 + acc.7))
        while i < count { s += a[i] * b[i] * c[i]; i += 1 }
        return s
    }

    @inline(__always)
    public static func max(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var m = -Float.infinity
        for i in 0..<count { m = Swift.max(m, x[i]) }
        return m
    }
}
