/// How the flat parameter buffer is cut for the ZeRO stages: one contiguous
/// part per data-parallel rank (⌈total / ranks⌉ values each, the last ones
/// shorter), and the segments the model uses one at a time — the
/// embedding, each block, the final norm with the output layer. Collectives
/// go segment by segment, so MPI's own temporary buffers stay a segment's size.
public struct DataParts: Sendable, Equatable {
    /// Every data rank's part of the flat buffer, in rank order.
    public let parts: [Range<Int>]
    /// Flat ranges used one at a time, in forward order.
    public let segments: [Range<Int>]
    public let rank: Int

    public init(layout: ParameterLayout, ranks: Int, rank: Int) {
        let total = layout.total, chunk = (total + ranks - 1) / max(ranks, 1)
        parts = (0..<ranks).map { r in min(total, r * chunk)..<min(total, (r + 1) * chunk) }
        let starts = [0] + layout.layers.map(\.attentionNorm) + [layout.finalNorm, total]
        segments = (0..<(starts.count - 1)).map { starts[$0]..<starts[$0 + 1] }
        self.rank = rank
    }

    public var owned: Range<Int> { parts[rank] }
    public var largestSegment: Int { segments.map(\.count).max() ?? 0 }

    /// How much of `range` each data rank owns.
    public func counts(_ range: Range<Int>) -> [Int] {
        parts.map { max(0, min($0.upperBound, range.upperBound) - max($0.lowerBound, range.lowerBound)) }
    }

    /// Where this rank's share of `range` starts within its part.
    public func offsetInPart(_ range: Range<Int>) -> Int {
        min(max(owned.lowerBound, range.lowerBound), owned.upperBound) - owned.lowerBound
    }
}

/// ZeRO stages 2 and 3 on one rank (Rajbhandari et al. 2020; FSDP in
/// PyTorch), over the parts and segments of `DataParts`.
///
/// - Stage 2: backward writes each segment's gradients into one reusable
///   segment-sized buffer; as soon as the segment is done they are
///   reduce-scattered over the data ranks and each rank adds its share to
///   `gradients`. No rank ever holds the whole model's gradients.
/// - Stage 3: each rank also keeps only its part of the weights (`weights`,
///   the fp32 master copy AdamW updates). A segment's weights are
///   all-gathered into one of two reusable segment-sized buffers just
///   before forward uses it, and again before backward does; the model
///   reads them there (`weightBase`), so there is nothing to free. While a
///   segment computes, the next one's gather is already started
///   (non-blocking) into the other buffer.
///
/// Whole-model operations (initialising, loading an `init:` model, writing
/// the final weights) go through the model's `params`, a paged buffer whose
/// pages are given back as soon as each tensor's part is kept.
public final class ParameterShards {
    public let stage: Int
    public let layout: DataParts
    let data: Communicator
    let params: FloatBuffer
    /// Stage 3: this rank's part of the weights between uses.
    public let weights: FloatBuffer?
    /// This rank's part of the gradients, summed over micro-batches and data ranks.
    public let gradients: FloatBuffer
    /// The segment backward is writing gradients for.
    let segmentGradients: FloatBuffer
    /// Stage 3: the segment in use and the next, gathered.
    let gathered: SegmentBuffers?
    /// The next segment's gather, started while the current one computes.
    private var prefetch: (segment: Int, op: PendingCollective)?
    /// bf16 precision: a gathered segment is rounded to bf16 for the products.
    let roundsToBF16: Bool
    /// How a segment's gradients are summed (in bf16 under bf16 precision).
    let exchange: GradientExchange
    /// Where a reduce-scatter lands before it is added to `gradients`.
    let landing: FloatBuffer

    init(stage: Int, layout: ParameterLayout, params: FloatBuffer, data: Communicator, precision: Precision) {
        precondition(stage == 2 || stage == 3, "ParameterShards is ZeRO-2 or ZeRO-3")
        self.stage = stage
        self.data = data
        self.params = params
        let parts = DataParts(layout: layout, ranks: data.size, rank: data.rank)
        self.layout = parts
        let mine = parts.owned.count, largest = parts.largestSegment
        weights = stage == 3 ? FloatBuffer(count: mine) : nil
        gathered = stage == 3 ? SegmentBuffers(segments: parts.segments, largest: largest) : nil
        gradients = FloatBuffer(count: mine)
        segmentGradients = FloatBuffer(count: largest)
        landing = FloatBuffer(count: min(largest, mine))
        roundsToBF16 = precision == .bf16
        exchange = GradientExchange(group: data, precision: precision, largestMessage: largest, largestBlock: min(largest, mine))
    }

    public var owned: Range<Int> { layout.owned }
    var segments: [Range<Int>] { layout.segments }

    /// Stage 3: the base that segment `s`'s global offsets index (it must be
    /// gathered); nil at stage 2, whose weights are the model's own.
    func weightBase(_ s: Int) -> UnsafeMutablePointer<Float>? {
        gathered?.base(s)
    }

    /// The base that segment `s`'s gradient offsets index.
    func gradientBase(_ s: Int) -> UnsafeMutablePointer<Float> {
        segmentGradients.base - segments[s].lowerBound
    }

    /// Stage 3: segment `s`'s weights, whole, into its buffer (collective over the data ranks).
    /// A segment still in its buffer since the last update is not fetched
    /// again (the last block and the head, from forward into backward).
    /// `next`, the segment the pass uses after this one, starts gathering
    /// into the other buffer at once.
    func gather(_ s: Int, next: Int? = nil) {
        guard let weights, let gathered else { return }
        if prefetch?.segment == s { finishPrefetch() }
        if !gathered.holds(s) {
            finishPrefetch()
            let seg = segments[s]
            data.allGather(send: weights.base + layout.offsetInPart(seg), receive: gathered.slot(s), counts: layout.counts(seg))
            landed(s)
        }
        if let next, next % 2 != s % 2, !gathered.holds(next), prefetch == nil {
            let seg = segments[next]
            gathered.mark(next, ready: false)
            prefetch = (next, data.startAllGather(send: weights.base + layout.offsetInPart(seg), receive: gathered.slot(next),
                                                  counts: layout.counts(seg)))
        }
    }

    /// The gather in flight, finished (every rank started it: each waits for its own part).
    private func finishPrefetch() {
        guard let p = prefetch else { return }
        p.op.wait()
        prefetch = nil
        landed(p.segment)
    }

    private func landed(_ s: Int) {
        guard let gathered else { return }
        if roundsToBF16 { BFloat16.round(gathered.slot(s), count: segments[s].count) }
        gathered.mark(s)
    }

    /// Stage 3: the weights are about to change (an update, a load): no
    /// gather may still be reading them, and every buffer must be gathered again.
    func invalidate() {
        finishPrefetch()
        gathered?.clear()
    }

    /// Segment `s`'s gradients summed over the data ranks, this rank's share
    /// added to `gradients`, the segment buffer cleared for the next (collective).
    func reduceGradients(_ s: Int) {
        let seg = segments[s], c = layout.counts(seg), n = c[data.rank]
        exchange.reduceScatter(send: segmentGradients.base, receive: landing.base, counts: c)
        if n > 0 {
            let into = gradients.base + layout.offsetInPart(seg), from = landing.base
            for i in 0..<n { into[i] += from[i] }
        }
        segmentGradients.base.update(repeating: 0, count: seg.count)
    }

    /// Stage 3: after weights were written whole into the model's paged
    /// buffer (an initialisation, an `init:` model), keeps this rank's part
    /// and gives the pages back. Not collective.
    func keepOwnedPart(of range: Range<Int>) {
        guard let weights else { return }
        invalidate()
        let own = owned, lo = max(own.lowerBound, range.lowerBound), hi = min(own.upperBound, range.upperBound)
        if lo < hi { (weights.base + (lo - own.lowerBound)).update(from: params.base + lo, count: hi - lo) }
        params.release(range)
    }

    /// Stage 3: segments' weights, whole, into the model's paged buffer
    /// (all of them for the weights file a pipeline's next stage reads).
    /// Collective.
    public func gatherIntoParams(_ which: [Int]? = nil) {
        guard let weights else { return }
        finishPrefetch()
        for s in which ?? Array(segments.indices) {
            let seg = segments[s]
            data.allGather(send: weights.base + layout.offsetInPart(seg), receive: params.base + seg.lowerBound, counts: layout.counts(seg))
        }
    }
}
