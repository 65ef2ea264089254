import XCTest
import Herd

/// The weighted data mixture: which source and which of its sequences each
/// global sequence reads.
final class MixtureScheduleTests: XCTestCase {
    func testProportionsFollowTheWeightsAndUnnormalisedWeightsGiveTheSameSchedule() throws {
        let m = try MixtureSchedule(weights: [0.5, 0.3, 0.2], seed: 42)
        XCTAssertEqual(m.block, 1000)
        XCTAssertEqual(m.counts, [500, 300, 200])
        XCTAssertEqual(m.proportions, [0.5, 0.3, 0.2])
        let realised = m.realisedProportions(upTo: 10_000)
        for (r, w) in zip(realised, [0.5, 0.3, 0.2]) { XCTAssertEqual(r, w, accuracy: 0.01) }
        var tally = [0, 0, 0]
        for g in 0..<10_500 {
            tally[m.source(ofSequence: g).source] += 1
            if (g + 1) % 1000 == 0 { XCTAssertEqual(tally, m.counts.map { $0 * (g + 1) / 1000 }, "exact per whole block") }
        }
        let unnormalised = try MixtureSchedule(weights: [5, 3, 2], seed: 42)
        XCTAssertEqual(unnormalised, m)
        for g in stride(from: 0, to: 50_000, by: 7) {
            XCTAssertTrue(unnormalised.source(ofSequence: g) == m.source(ofSequence: g))
        }
    }

    func testApportionmentByLargestRemainder() throws {
        // 1/3 each of 1000: 333.33… each, the spare one to the lowest source.
        XCTAssertEqual(try MixtureSchedule(weights: [1, 1, 1], seed: 0).counts, [334, 333, 333])
        // 0.1234/0.8766 of 10: 1.234 and 8.766 → 1 and 9.
        XCTAssertEqual(try MixtureSchedule(weights: [0.1234, 0.8766], seed: 0, block: 10).counts, [1, 9])
        // A tiny weight still gets one sequence per block, taken from the largest.
        XCTAssertEqual(try MixtureSchedule(weights: [1e-6, 0.7, 0.3], seed: 0, block: 10).counts, [1, 6, 3])
        XCTAssertEqual(try MixtureSchedule(weights: [1e-9, 1e-9, 1], seed: 0, block: 3).counts, [1, 1, 1])
        XCTAssertEqual(try MixtureSchedule(weights: [7], seed: 0, block: 5).counts, [5])
        for weights in [[0.5, 0.3, 0.2], [1, 2, 3, 4, 5, 6, 7], [1e-3, 1, 1e3]] {
            for block in [7, 10, 100, 1000, 1013] {
                let m = try MixtureSchedule(weights: weights, seed: 1, block: block)
                XCTAssertEqual(m.counts.reduce(0, +), block)
                XCTAssertTrue(m.counts.allSatisfy { $0 >= 1 })
            }
        }
    }

    func testEverySourceReadsItsSequencesInOrderOfBlocksWithoutGapsOrRepeats() throws {
        let m = try MixtureSchedule(weights: [0.5, 0.3, 0.2, 0.0004], seed: 9)
        var seen = [[Int]](repeating: [], count: 4)
        for g in 0..<(20 * m.block) {
            let (k, j) = m.source(ofSequence: g)
            seen[k].append(j)
            XCTAssertEqual(j / m.counts[k], g / m.block, "index \(j) of source \(k) belongs to block \(g / m.block)")
        }
        for k in 0..<4 { XCTAssertEqual(seen[k].sorted(), Array(0..<(20 * m.counts[k])), "source \(k)") }
        // A block size that is not a power of two or four, and many sources.
        let odd = try MixtureSchedule(weights: [3, 1, 4, 1, 5, 9, 2, 6], seed: 5, block: 37)
        var seenOdd = [Set<Int>](repeating: [], count: 8)
        for g in 0..<(20 * 37) { let (k, j) = odd.source(ofSequence: g); XCTAssertTrue(seenOdd[k].insert(j).inserted) }
        for k in 0..<8 { XCTAssertEqual(seenOdd[k], Set(0..<(20 * odd.counts[k]))) }
    }

    /// A step's reads, as data-parallel rank `rank` of `dp` computes them
    /// (contiguous slices, as ShardSampler.sequences does).
    private func reads(_ m: MixtureSchedule, step: Int, globalBatch: Int, rank: Int, dp: Int) -> [[Int]] {
        let per = globalBatch / dp, first = step * globalBatch + rank * per
        return (first..<(first + per)).map { let s = m.source(ofSequence: $0); return [s.source, s.index] }
    }

    func testAStepReadsTheSameWhateverTheDataParallelDegreeAndAfterAResume() throws {
        let weights = [0.5, 0.3, 0.2], batch = 24
        let m = try MixtureSchedule(weights: weights, seed: 2024, block: 100)
        // The uninterrupted run at dp 2.
        var run: [[[Int]]] = []
        for step in 0..<60 { run.append((0..<2).flatMap { reads(m, step: step, globalBatch: batch, rank: $0, dp: 2) }) }
        for step in 0..<60 {
            let key = run[step].map { "\($0)" }.sorted()
            for dp in [1, 3] {
                let other = (0..<dp).flatMap { reads(m, step: step, globalBatch: batch, rank: $0, dp: dp) }
                XCTAssertEqual(other.map { "\($0)" }.sorted(), key, "step \(step), dp \(dp)")
            }
        }
        // Resumed at step 37 from nothing but the job's settings, at dp 3.
        let resumed = try MixtureSchedule(weights: weights, seed: 2024, block: 100)
        for step in 37..<60 {
            let r = (0..<3).flatMap { reads(resumed, step: step, globalBatch: batch, rank: $0, dp: 3) }
            XCTAssertEqual(r.map { "\($0)" }.sorted(), run[step].map { "\($0)" }.sorted(), "resumed step \(step)")
        }
        // Nothing read twice. The 60 steps are 1440 sequences: 14 whole blocks,
        // in which each source read exactly its sequences 0..<14·n_k, then part
        // of block 14, in which it read some of that block's range
        // 14·n_k..<15·n_k (in the block's shuffled order).
        let all = run.flatMap { $0 }
        XCTAssertEqual(Set(all.map { "\($0)" }).count, all.count)
        for k in 0..<3 {
            let n = m.counts[k]
            XCTAssertEqual(all.prefix(1400).filter { $0[0] == k }.map { $0[1] }.sorted(), Array(0..<(14 * n)))
            let partial = all.dropFirst(1400).filter { $0[0] == k }.map { $0[1] }
            XCTAssertEqual(14 * n + partial.count, m.sequencesBefore(60 * batch, source: k))
            XCTAssertTrue(partial.allSatisfy { (14 * n..<15 * n).contains($0) })
        }
        // Each source's sampler turns its index into a window, the same way on every layout.
        let samplers = [[4000, 2600], [999, 1500], [700]].enumerated().map {
            ShardSampler(shardTokenCounts: $0.element, seqLen: 15, seed: 2024 &+ UInt64($0.offset))
        }
        let windows = { (s: [Int]) -> String in let l = samplers[s[0]].location(forSequence: s[1]); return "\(s[0]):\(l.shard):\(l.offset)" }
        XCTAssertEqual(run[45].map(windows).sorted(),
                       (0..<3).flatMap { reads(resumed, step: 45, globalBatch: batch, rank: $0, dp: 3) }.map(windows).sorted())
    }

    func testTheOrderWithinABlockIsShuffledPerBlockAndPerSeed() throws {
        let a = try MixtureSchedule(weights: [0.5, 0.3, 0.2], seed: 1)
        let b = try MixtureSchedule(weights: [0.5, 0.3, 0.2], seed: 2)
        let again = try MixtureSchedule(weights: [0.5, 0.3, 0.2], seed: 1)
        func pattern(_ m: MixtureSchedule, block: Int) -> [Int] {
            (block * m.block..<(block + 1) * m.block).map { m.source(ofSequence: $0).source }
        }
        let a0 = pattern(a, block: 0), a1 = pattern(a, block: 1)
        XCTAssertNotEqual(a0, a1, "another order in the next block")
        XCTAssertNotEqual(a0, pattern(b, block: 0), "another order for another seed")
        XCTAssertEqual(a0, pattern(again, block: 0), "the same seed, the same order")
        XCTAssertEqual(a1, pattern(again, block: 1))
        XCTAssertNotEqual(a, b)
        // Mixed, not in runs: the first tenth of a block holds every source near its share.
        let head = a0.prefix(100)
        for (k, w) in [0.5, 0.3, 0.2].enumerated() {
            XCTAssertEqual(Double(head.filter { $0 == k }.count) / 100, w, accuracy: 0.15)
        }
    }

    func testSequencesBeforeAgreesWithCounting() throws {
        let m = try MixtureSchedule(weights: [2, 7, 1, 0.5], seed: 77, block: 250)
        var prefix = [[Int]](repeating: [0, 0, 0, 0], count: 1)
        for g in 0..<2_600 {
            var next = prefix.last!
            next[m.source(ofSequence: g).source] += 1
            prefix.append(next)
        }
        var rng = SplitMix64(seed: 3)
        for _ in 0..<60 {
            let g = Int(rng.next() % 2_601)
            XCTAssertEqual(m.sequencesBefore(g), prefix[g], "g = \(g)")
            for k in 0..<4 { XCTAssertEqual(m.sequencesBefore(g, source: k), prefix[g][k], "g = \(g), k = \(k)") }
            if g > 0 { XCTAssertEqual(m.realisedProportions(upTo: g), prefix[g].map { Double($0) / Double(g) }) }
        }
        for g in [0, 1, 249, 250, 251, 2_600] { XCTAssertEqual(m.sequencesBefore(g), prefix[g]) }
        XCTAssertEqual(m.realisedProportions(upTo: 0), [0, 0, 0, 0])
        // Far into a run: whole blocks by multiplication, the partial one by counting.
        let g = 1_000_000_000_123
        let base = (g / 250) * 250
        var partial = m.counts.map { (g / 250) * $0 }
        for h in base..<g { partial[m.source(ofSequence: h).source] += 1 }
        XCTAssertEqual(m.sequencesBefore(g), partial)
    }

    func testInvalidWeightsAreRejectedNamingTheField() {
        func failure(_ weights: [Double], block: Int = 1000) -> String? {
            do { _ = try MixtureSchedule(weights: weights, seed: 0, block: block); return nil }
            catch { XCTAssertTrue(error is MixtureError); return "\(error)" }
        }
        XCTAssertEqual(failure([0.5, 0, 0.5]).map { $0.contains("data.mix[1].weight") }, true)
        XCTAssertEqual(failure([0.5, 0, 0.5]).map { $0.contains("0.0") }, true)
        XCTAssertEqual(failure([-0.3, 1]).map { $0.contains("data.mix[0].weight") && $0.contains("-0.3") }, true)
        XCTAssertEqual(failure([1, 1, .nan]).map { $0.contains("data.mix[2].weight") && $0.contains("nan") }, true)
        XCTAssertEqual(failure([.infinity]).map { $0.contains("data.mix[0].weight") && $0.contains("inf") }, true)
        XCTAssertEqual(failure([1, -.infinity]).map { $0.contains("data.mix[1].weight") }, true)
        XCTAssertEqual(failure([]).map { $0.contains("data.mix") }, true)
        XCTAssertEqual(failure([1, 1, 1], block: 2).map { $0.contains("block") }, true)
        XCTAssertNil(failure([1, 1, 1], block: 3))
        XCTAssertThrowsError(try MixtureSchedule(weights: [0.5, -1], seed: 0)) {
            XCTAssertEqual($0 as? MixtureError, .invalidWeight(index: 1, value: -1))
        }
    }

    func testSeededPermutationIsABijectionPerRound() {
        for count in [1, 2, 3, 4, 5, 16, 17, 37, 1000, 4097] {
            let p = SeededPermutation(count: count, seed: 12)
            for round: UInt64 in [0, 1, 99] {
                XCTAssertEqual(Set((0..<count).map { p.apply($0, round: round) }), Set(0..<count), "count \(count)")
            }
        }
        XCTAssertEqual(SeededPermutation(count: 50, seed: 1), SeededPermutation(count: 50, seed: 1))
        XCTAssertNotEqual(SeededPermutation(count: 50, seed: 1), SeededPermutation(count: 50, seed: 2))
    }

    /// ShardSampler now takes its slot order from SeededPermutation; every
    /// value it returns must be what the previous implementation (kept
    /// below, verbatim) returned, or runs would change their data on upgrade.
    func testShardSamplerIsBitIdenticalToItsPreviousImplementation() {
        var rng = SplitMix64(seed: 0xC0FFEE)
        var checked = 0
        for _ in 0..<120 {
            let shards = 1 + Int(rng.next() % 12)
            let counts = (0..<shards).map { _ in rng.next() % 5 == 0 ? Int(rng.next() % 20) : Int(rng.next() % 9000) }
            let seqLen = [1, 3, 15, 63, 255, 1023][Int(rng.next() % 6)]
            let seed = rng.next() % 3 == 0 ? rng.next() % 10 : rng.next()
            let new = ShardSampler(shardTokenCounts: counts, seqLen: seqLen, seed: seed)
            let old = OldShardSampler(shardTokenCounts: counts, seqLen: seqLen, seed: seed)
            XCTAssertEqual(new.totalSlots, old.totalSlots)
            XCTAssertEqual(new.shardCount, old.shardCount)
            guard old.totalSlots > 0 else { continue }
            var gs = Array(0..<min(3 * old.totalSlots, 300))
            for _ in 0..<40 { gs.append(Int(rng.next() % (1 << 50))) }
            for g in gs {
                XCTAssertEqual(new.slot(forSequence: g), old.slot(forSequence: g), "counts \(counts) seqLen \(seqLen) seed \(seed) g \(g)")
                let a = new.location(forSequence: g), b = old.location(forSequence: g)
                XCTAssertTrue(a.shard == b.shard && a.offset == b.offset)
                checked += 1
            }
            for s in 0..<old.totalSlots where s % 7 == 0 {
                let a = new.location(ofSlot: s), b = old.location(ofSlot: s)
                XCTAssertTrue(a.shard == b.shard && a.offset == b.offset)
            }
            let step = Int(rng.next() % 100_000)
            for dp in [1, 2, 4] {
                for rank in 0..<dp {
                    let a = new.sequences(step: step, globalBatch: 16, dpRank: rank, dpSize: dp)
                    let b = old.sequences(step: step, globalBatch: 16, dpRank: rank, dpSize: dp)
                    XCTAssertTrue(a.count == b.count && zip(a, b).allSatisfy { $0.shard == $1.shard && $0.offset == $1.offset })
                }
            }
        }
        // A large corpus, as in TokenShardTests: 2×10¹² tokens.
        let counts = [Int](repeating: 4_000_000, count: 500_000)
        let new = ShardSampler(shardTokenCounts: counts, seqLen: 4095, seed: 7)
        let old = OldShardSampler(shardTokenCounts: counts, seqLen: 4095, seed: 7)
        for g in [0, 1, 460_799_999, 488_280_000, 488_281_999, 1_000_000_000_000] {
            XCTAssertEqual(new.slot(forSequence: g), old.slot(forSequence: g))
        }
        XCTAssertGreaterThan(checked, 5_000)
    }
}

/// ShardSampler as it was before SeededPermutation was extracted from it.
private struct OldShardSampler {
    let seqLen: Int
    let seed: UInt64
    let cumulative: [Int]
    let halfBits: Int

    init(shardTokenCounts: [Int], seqLen: Int, seed: UInt64) {
        self.seqLen = seqLen
        self.seed = seed
        var c = [0]
        c.reserveCapacity(shardTokenCounts.count + 1)
        for n in shardTokenCounts { c.append(c.last! + max(n, 0) / (seqLen + 1)) }
        cumulative = c
        var bits = 1
        while (1 << (2 * bits)) < max(c.last!, 2) { bits += 1 }
        halfBits = bits
    }

    var totalSlots: Int { cumulative.last! }
    var shardCount: Int { cumulative.count - 1 }

    func slot(forSequence g: Int) -> Int {
        precondition(totalSlots > 0, "the corpus has no sequence of seqLen + 1 tokens")
        precondition(g >= 0, "sequence numbers start at 0")
        let epoch = g / totalSlots, i = g % totalSlots
        let key = SplitMix64.mix(seed, UInt64(epoch))
        var x = UInt64(i)
        repeat { x = feistel(x, key: key) } while x >= UInt64(totalSlots)
        return Int(x)
    }

    func location(ofSlot s: Int) -> (shard: Int, offset: Int) {
        var lo = 0, hi = cumulative.count - 1
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if cumulative[mid] <= s { lo = mid } else { hi = mid }
        }
        return (lo, (s - cumulative[lo]) * (seqLen + 1))
    }

    func location(forSequence g: Int) -> (shard: Int, offset: Int) { location(ofSlot: slot(forSequence: g)) }

    func sequences(step: Int, globalBatch: Int, dpRank: Int, dpSize: Int) -> [(shard: Int, offset: Int)] {
        precondition(globalBatch % dpSize == 0, "the global batch must divide among the data-parallel ranks")
        let per = globalBatch / dpSize, first = step * globalBatch + dpRank * per
        return (first..<(first + per)).map { location(forSequence: $0) }
    }

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
