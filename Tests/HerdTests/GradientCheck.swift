import XCTest
import Herd

/// Central finite differences against an analytic gradient. The objective is
/// evaluated in fp32 by the kernels and accumulated in Double; the error is
/// the relative norm ‖analytic − numeric‖ / max(‖analytic‖, ‖numeric‖) over
/// the checked coordinates, the same measure for every kernel.
struct GradientCheck {
    var h: Float = 1e-2
    var tolerance: Double = 1e-3

    /// Perturbs `buffer[i]` for each i in `indices`, evaluating `objective`.
    func numeric(_ buffer: UnsafeMutablePointer<Float>, indices: [Int], objective: () -> Double) -> [Double] {
        indices.map { i in
            let v = buffer[i]
            buffer[i] = v + h
            let plus = objective()
            buffer[i] = v - h
            let minus = objective()
            buffer[i] = v
            return (plus - minus) / (2 * Double(h))
        }
    }

    static func relativeError(_ a: [Double], _ b: [Double]) -> Double {
        var diff = 0.0, na = 0.0, nb = 0.0
        for (x, y) in zip(a, b) { diff += (x - y) * (x - y); na += x * x; nb += y * y }
        let denom = max(na.squareRoot(), nb.squareRoot())
        return denom == 0 ? 0 : diff.squareRoot() / denom
    }

    func check(_ name: String, analytic: [Float], buffer: UnsafeMutablePointer<Float>, indices: [Int]? = nil,
               objective: () -> Double, file: StaticString = #filePath, line: UInt = #line) {
        let idx = indices ?? Array(0..<analytic.count)
        let num = numeric(buffer, indices: idx, objective: objective)
        let ana = idx.map { Double(analytic[$0]) }
        let err = Self.relativeError(ana, num)
        XCTAssertGreaterThan(ana.map(abs).max() ?? 0, 0, "\(name): the analytic gradient is all zero", file: file, line: line)
        XCTAssertLessThanOrEqual(err, tolerance, "\(name): relative error \(err)", file: file, line: line)
    }
}

/// Deterministic test data.
struct TestRandom {
    var rng: SplitMix64
    init(_ seed: UInt64) { rng = SplitMix64(seed: seed) }
    mutating func buffer(_ n: Int, scale: Double = 1) -> FloatBuffer {
        let b = FloatBuffer(count: n)
        for i in 0..<n { b[i] = Float(rng.nextNormal() * scale) }
        return b
    }
}

/// Σ out[i]·w[i] in Double: a scalar whose gradient with respect to `out` is `w`.
func weightedSum(_ out: UnsafePointer<Float>, _ w: FloatBuffer) -> Double {
    var s = 0.0
    for i in 0..<w.count { s += Double(out[i]) * Double(w[i]) }
    return s
}
