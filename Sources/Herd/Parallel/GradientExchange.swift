/// Sums gradients over the data-parallel ranks: in fp32, or under bf16
/// precision in bf16 — half the bytes on the wire, each pairwise sum
/// rounded to bf16 (Megatron's default, `grad_reduce_in_fp32: false`) —
/// widened back to fp32 for clipping and AdamW.
final class GradientExchange {
    let group: Communicator
    let bf16: Bool
    /// bf16: a message in 16 bits, and this rank's block of a reduce-scatter.
    private let words: BFloat16Buffer
    private let block: BFloat16Buffer

    init(group: Communicator, precision: Precision, largestMessage: Int, largestBlock: Int) {
        self.group = group
        bf16 = precision == .bf16 && group.size > 1
        words = BFloat16Buffer(count: bf16 ? largestMessage : 0)
        block = BFloat16Buffer(count: bf16 ? largestBlock : 0)
    }

    /// g[0..<count] summed over the group, in place.
    func allReduce(_ g: UnsafeMutablePointer<Float>, count: Int) {
        guard bf16 else { return group.allReduce(g, count: count, op: .sum) }
        precondition(count <= words.count, "a gradient message larger than its bf16 buffer")
        let w = words.base
        for i in 0..<count { w[i] = BFloat16.fromFloat(g[i]) }
        group.allReduceBF16(w, count: count)
        for i in 0..<count { g[i] = BFloat16.toFloat(w[i]) }
    }

    /// send[0..<Σcounts] summed over the group; this rank's block into `receive`.
    func reduceScatter(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, counts: [Int]) {
        guard bf16 else { return group.reduceScatter(send: send, receive: receive, counts: counts) }
        let total = counts.reduce(0, +), mine = counts[group.rank]
        precondition(total <= words.count && mine <= block.count, "a gradient message larger than its bf16 buffer")
        let w = words.base, b = block.base
        for i in 0..<total { w[i] = BFloat16.fromFloat(send[i]) }
        group.reduceScatterBF16(send: w, receive: b, counts: counts)
        for i in 0..<mine { receive[i] = BFloat16.toFloat(b[i]) }
    }
}
