import Foundation

/// A small, fast, seedable generator (SplitMix64). Herd derives every random
/// stream from the job's seed, so that a run is reproducible and a resumed
/// run can regenerate the same stream from a counter.
public struct SplitMix64: RandomNumberGenerator, Sendable, Codable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A stateless hash of (seed, index): the i-th draw of a stream without
    /// drawing the ones before it.
    public static func mix(_ seed: UInt64, _ index: UInt64) -> UInt64 {
        var g = SplitMix64(seed: seed ^ (index &* 0xD1B5_4A32_D192_ED03))
        return g.next()
    }

    /// The `index`-th standard normal of the stream seeded `seed`, drawn
    /// without drawing the ones before it (Box–Muller takes two uniforms,
    /// and SplitMix64's state advances by a constant per draw). Each rank
    /// initialises its slice of a weight as its part of one global stream.
    public static func normal(seed: UInt64, index: Int) -> Double {
        var g = SplitMix64(seed: seed &+ UInt64(2 * index) &* 0x9E37_79B9_7F4A_7C15)
        return g.nextNormal()
    }

    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal by Box–Muller.
    public mutating func nextNormal() -> Double {
        let u1 = max(nextUnit(), 1e-300), u2 = nextUnit()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2)
    }
}
