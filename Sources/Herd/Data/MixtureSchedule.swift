/// Which source of a weighted data mixture (`data.mix: [{shards, weight}]`)
/// global sequence g reads, and which sequence of that source it is — from
/// the weights and the seed alone, O(1) per lookup, with no state to save.
///
/// The global sequences are cut into blocks of `block`; in every block
/// source k gets exactly n_k sequences (the weights normalised, times
/// block, rounded by largest remainder, at least 1 each), so the realised
/// mixture never drifts more than one block from the weights. Within block
/// b, position p = g mod block is sent to q = π_b(p), a seeded permutation
/// of the block (so sources interleave rather than arrive in runs), and q
/// falls in source k's range [cum[k], cum[k+1]). Source k's own sequence
/// number is j = b · n_k + (q − cum[k]): every source reads its sequences
/// 0, 1, 2, … exactly once each, block after block, with no gaps, and its
/// own `ShardSampler` turns j into a window.
///
/// Why that matters: g = step · globalBatch + position is the same
/// numbering whatever the data-parallel layout, and (source, j) is a pure
/// function of g, so a run resharded to another data-parallel degree, or
/// resumed at any step, reads exactly the sequences the uninterrupted run
/// would have — no per-source cursors to checkpoint.
public struct MixtureSchedule: Sendable, Equatable {
    /// n_k: the sequences source k gets in each block.
    public let counts: [Int]
    public let block: Int
    public let seed: UInt64
    /// cumulative[k] = n_0 + … + n_{k-1}; cumulative.last = block.
    let cumulative: [Int]
    /// π_b for every block b (the round of the permutation is the block).
    let order: SeededPermutation

    public init(weights: [Double], seed: UInt64, block: Int = 1000) throws {
        guard !weights.isEmpty else { throw MixtureError.noSources }
        for (i, w) in weights.enumerated() where !(w.isFinite && w > 0) {
            throw MixtureError.invalidWeight(index: i, value: w)
        }
        guard block >= weights.count else { throw MixtureError.blockTooSmall(block: block, sources: weights.count) }
        self.block = block
        self.seed = seed
        let n = Self.apportion(weights, block: block)
        counts = n
        var c = [0]
        for x in n { c.append(c.last! + x) }
        cumulative = c
        // Not keyed by the bare seed: a source's ShardSampler may use the same
        // seed, and its slot order must not echo the mixture's order.
        order = SeededPermutation(count: block, seed: SplitMix64.mix(seed, 0x4D49_5854_5552_4531))
    }

    /// n_k / block: the proportions the schedule realises over whole blocks.
    public var proportions: [Double] { counts.map { Double($0) / Double(block) } }
    public var sourceCount: Int { counts.count }

    /// The source global sequence g reads, and its sequence number there.
    public func source(ofSequence g: Int) -> (source: Int, index: Int) {
        precondition(g >= 0, "sequence numbers start at 0")
        let b = g / block, q = order.apply(g % block, round: UInt64(b))
        let k = sourceOf(position: q)
        return (k, b * counts[k] + (q - cumulative[k]))
    }

    /// How many of global sequences 0..<g went to source k: b · n_k for the
    /// whole blocks, then a walk over the partial block (at most `block`
    /// permutation lookups).
    public func sequencesBefore(_ g: Int, source k: Int) -> Int {
        precondition(g >= 0, "sequence numbers start at 0")
        precondition(counts.indices.contains(k), "no source \(k)")
        let b = g / block, r = g % block
        let lo = cumulative[k], hi = cumulative[k + 1]
        var n = b * counts[k]
        for p in 0..<r {
            let q = order.apply(p, round: UInt64(b))
            if q >= lo && q < hi { n += 1 }
        }
        return n
    }

    /// How many of global sequences 0..<g went to each source.
    public func sequencesBefore(_ g: Int) -> [Int] {
        precondition(g >= 0, "sequence numbers start at 0")
        let b = g / block, r = g % block
        var n = counts.map { b * $0 }
        for p in 0..<r { n[sourceOf(position: order.apply(p, round: UInt64(b)))] += 1 }
        return n
    }

    /// The fraction of global sequences 0..<g each source received (all zero
    /// for g = 0): what a run reports as the mixture it actually trained on.
    public func realisedProportions(upTo g: Int) -> [Double] {
        guard g > 0 else { return counts.map { _ in 0 } }
        return sequencesBefore(g).map { Double($0) / Double(g) }
    }

    /// The k with cumulative[k] ≤ q < cumulative[k + 1] (counts are ≥ 1, so
    /// exactly one).
    func sourceOf(position q: Int) -> Int {
        var lo = 0, hi = cumulative.count - 1
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if cumulative[mid] <= q { lo = mid } else { hi = mid }
        }
        return lo
    }

    /// Largest-remainder apportionment of `block` among the weights (ties to
    /// the lower source), then at least 1 per source, each taken from the
    /// currently largest count (ties to the lower source). Remainders are
    /// compared at 1e-9 resolution so that weights equal up to floating-point
    /// noise (0.5/0.3/0.2 and 5/3/2) apportion the same.
    static func apportion(_ weights: [Double], block: Int) -> [Int] {
        let total = weights.reduce(0, +)
        let exact = weights.map { $0 / total * Double(block) }
        var n = exact.map { Int(($0 + 1e-9).rounded(.down)) }
        let remainders = zip(exact, n).map { max(0, (($0 - Double($1)) * 1e9).rounded()) }
        let order = weights.indices.sorted { remainders[$0] != remainders[$1] ? remainders[$0] > remainders[$1] : $0 < $1 }
        var left = block - n.reduce(0, +)
        var i = 0
        while left > 0 { n[order[i % order.count]] += 1; left -= 1; i += 1 }
        while left < 0 {   // only if rounding overshot: take from the largest
            let big = n.indices.max { n[$0] != n[$1] ? n[$0] < n[$1] : $0 > $1 }!
            n[big] -= 1; left += 1
        }
        for k in n.indices where n[k] == 0 {
            let big = n.indices.max { n[$0] != n[$1] ? n[$0] < n[$1] : $0 > $1 }!
            n[big] -= 1; n[k] = 1
        }
        return n
    }
}

/// A `data.mix` that cannot be scheduled.
public enum MixtureError: Error, CustomStringConvertible, Equatable {
    case noSources
    case invalidWeight(index: Int, value: Double)
    case blockTooSmall(block: Int, sources: Int)

    public var description: String {
        switch self {
        case .noSources:
            return "data.mix must list at least one source"
        case .invalidWeight(let i, let w):
            return "data.mix[\(i)].weight must be a finite number > 0 (got \(w))"
        case .blockTooSmall(let block, let sources):
            return "the mixture block (\(block)) must be at least the number of data.mix sources (\(sources))"
        }
    }
}
