/// A pseudo-random permutation of [0, count), a different one per round
/// (an epoch of a sampler, a block of a mixture), computed per index with no
/// table: a 4-round Feistel network over the smallest even-bit domain
/// ≥ count, keyed by (seed, round), with cycle-walking back into [0, count).
/// The domain is under 4·count, so a lookup takes a few hashes on average.
/// Being a pure function of (seed, round, i), it lets a sampler answer
/// "what does sequence g read" at any step, on any rank, after any resume.
public struct SeededPermutation: Sendable, Equatable {
    public let count: Int
    public let seed: UInt64
    /// Each Feistel half has halfBits bits: the domain is 4^halfBits ≥ count.
    let halfBits: Int

    public init(count: Int, seed: UInt64) {
        precondition(count >= 0, "a permutation of a negative count")
        self.count = count
        self.seed = seed
        var bits = 1
        while (1 << (2 * bits)) < max(count, 2) { bits += 1 }
        halfBits = bits
    }

    /// π_round(i), for i in [0, count).
    public func apply(_ i: Int, round: UInt64) -> Int {
        precondition(i >= 0 && i < count, "index \(i) outside [0, \(count))")
        let key = SplitMix64.mix(seed, round)
        var x = UInt64(i)
        // Cycle-walking: the Feistel network permutes the whole domain, so
        // re-applying it from a value outside [0, count) reaches one inside,
        // and the restriction is still a bijection of [0, count).
        repeat { x = feistel(x, key: key) } while x >= UInt64(count)
        return Int(x)
    }

    /// A bijection of [0, 4^halfBits): four rounds of L, R ← R, L ⊕ F(R).
    func feistel(_ x: UInt64, key: UInt64) -> UInt64 {
        let mask = (UInt64(1) << UInt64(halfBits)) - 1
        var l = x >> UInt64(halfBits), r = x & mask
        for round in 0..<4 {
            let f = SplitMix64.mix(key &+ UInt64(round), r) & mask
            (l, r) = (r, l ^ f)
        }
        return (l << UInt64(halfBits)) | r
    }
}
