/// Two segment-sized working buffers — the segment in use and the next —
/// and which segment each holds, so that the model reads a segment's
/// weights there at their global offsets (`base`). ZeRO-3 gathers into
/// them; bf16 without ZeRO-3 rounds into them.
final class SegmentBuffers {
    let segments: [Range<Int>]
    private let buffers: [FloatBuffer]
    private var holding: [Int?] = [nil, nil]

    init(segments: [Range<Int>], largest: Int) {
        self.segments = segments
        buffers = [FloatBuffer(count: largest), FloatBuffer(count: largest)]
    }

    /// Where segment `s` goes (its values from offset 0).
    func slot(_ s: Int) -> UnsafeMutablePointer<Float> { buffers[s % 2].base }

    func holds(_ s: Int) -> Bool { holding[s % 2] == s }

    /// Segment `s` is now in its slot (or, with nil, on its way: not usable yet).
    func mark(_ s: Int, ready: Bool = true) { holding[s % 2] = ready ? s : nil }

    func clear() { holding = [nil, nil] }

    /// The base segment `s`'s global offsets index; it must be in its slot.
    func base(_ s: Int) -> UnsafeMutablePointer<Float> {
        guard holds(s) else { preconditionFailure("segment \(s) used before it was put in its buffer") }
        return buffers[s % 2].base - segments[s].lowerBound
    }
}
