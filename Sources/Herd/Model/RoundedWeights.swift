/// bf16 precision without ZeRO-3: the weights a segment's products use,
/// rounded to bf16 into one of two working buffers just before the segment
/// runs, while the master copy the optimizer updates stays fp32. (Under
/// ZeRO-3 the gathered segment is rounded in place instead.)
final class RoundedWeights {
    let buffers: SegmentBuffers

    init(layout: ParameterLayout) {
        let parts = DataParts(layout: layout, ranks: 1, rank: 0)
        buffers = SegmentBuffers(segments: parts.segments, largest: parts.largestSegment)
    }

    /// Segment `s` of `params`, rounded, into its buffer.
    func stage(_ s: Int, from params: UnsafePointer<Float>) {
        let seg = buffers.segments[s], into = buffers.slot(s)
        into.update(from: params + seg.lowerBound, count: seg.count)
        BFloat16.round(into, count: seg.count)
        buffers.mark(s)
    }

    /// The base segment `s`'s global offsets index (it must be staged).
    func base(_ s: Int) -> UnsafeMutablePointer<Float> { buffers.base(s) }
}
