/// bf16 precision without ZeRO-3: the weights a segment's products use,
/// rounded to bf16 into one of two working buffers just before the segment
/// runs, while the master copy the optimizer updates stays fp32. (Under
/// ZeRO-3 the gathered segment is rounded in place instead.)
final class RoundedWeights {
    let segments: [Range<Int>]
    let buffers: [FloatBuffer]
    private var holds: [Int?] = [nil, nil]

    init(layout: ParameterLayout) {
        let parts = DataParts(layout: layout, ranks: 1, rank: 0)
        segments = parts.segments
        buffers = [FloatBuffer(count: parts.largestSegment), FloatBuffer(count: parts.largestSegment)]
    }

    /// Segment `s` of `params`, rounded, into its buffer.
    func stage(_ s: Int, from params: UnsafePointer<Float>) {
        let seg = segments[s], into = buffers[s % 2].base
        into.update(from: params + seg.lowerBound, count: seg.count)
        BFloat16.round(into, count: seg.count)
        holds[s % 2] = s
    }

    /// The base segment `s`'s global offsets index (it must be staged).
    func base(_ s: Int) -> UnsafeMutablePointer<Float> {
        guard holds[s % 2] == s else { preconditionFailure("segment \(s) used before it was rounded") }
        return buffers[s % 2].base - segments[s].lowerBound
    }
}
