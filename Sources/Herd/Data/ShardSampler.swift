/// Which sequences a data-parallel rank trains on at a step, for a corpus
/// of token shards of any size, from the seed alone: O(shards) memory (a
/// cumulative count per shard), nothing per token or per sequence.
///
/// The corpus is cut into slots: non-overlapping windows of seqLen + 1
/// tokens inside each shard (a window does not cross shards). Sequence g of
/// the run (the global counter: step · globalBatch + position in the batch)
/// is slot π_e(g mod N) of epoch e = g / N, where π_e is a pseudo-random
/// permutation of the N slots computed on demand (`SeededPermutation`: a
/// 4-round Feistel network over the smallest even-bit domain ≥ N, keyed by
/// (seed, epoch), with cycle-walking back into [0, N)). So no slot repeats
/// within an epoch, the batch does not depend on how it is split among
/// ranks, and a resumed run continues exactly where it stopped.
public struct ShardSampler: Sendable {
    public let seqLen: Int
    public let seed: UInt64
    /// cumulative[i] = slots in shards 0..<i; cumulative.last = total.
    let cumulative: [Int]
    /// π_e for every epoch e (the round of the permutation is the epoch).
    let order: SeededPermutation

    public init(shardTokenCounts: [Int], seqLen: Int, seed: UInt64) {
        self.seqLen = seqLen
        self.seed = seed
        var c = [0]
        c.reserveCapacity(shardTokenCounts.count + 1)
        for n in shardTokenCounts { c.append(c.last! + max(n, 0) / (seqLen + 1)) }
        cumulative = c
        order = SeededPermutation(count: c.last!, seed: seed)
    }

    public var totalSlots: Int { cumulative.last! }
    public var shardCount: Int { cumulative.count - 1 }

    /// The slot sequence g reads.
    public func slot(forSequence g: Int) -> Int {
        precondition(totalSlots > 0, "the corpus has no sequence of seqLen + 1 tokens")
        precondition(g >= 0, "sequence numbers start at 0")
        let epoch = g / totalSlots, i = g % totalSlots
        return order.apply(i, round: UInt64(epoch))
    }

    /// (shard, token offset) of a slot.
    public func location(ofSlot s: Int) -> (shard: Int, offset: Int) {
        var lo = 0, hi = cumulative.count - 1     // find the last i with cumulative[i] <= s
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if cumulative[mid] <= s { lo = mid } else { hi = mid }
        }
        return (lo, (s - cumulative[lo]) * (seqLen + 1))
    }

    public func location(forSequence g: Int) -> (shard: Int, offset: Int) { location(ofSlot: slot(forSequence: g)) }

    /// The sequences data-parallel rank `dpRank` of `dpSize` computes at `step`.
    public func sequences(step: Int, globalBatch: Int, dpRank: Int, dpSize: Int) -> [(shard: Int, offset: Int)] {
        precondition(globalBatch % dpSize == 0, "the global batch must divide among the data-parallel ranks")
        let per = globalBatch / dpSize, first = step * globalBatch + dpRank * per
        return (first..<(first + per)).map { location(forSequence: $0) }
    }
}
