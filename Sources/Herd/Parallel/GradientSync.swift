/// Everything between the last backward of a step and the next forward:
/// gradients made global across data-parallel ranks, clipped on the true
/// global norm, and the AdamW update — plain, or with ZeRO-1 (optimizer
/// state sharded over the data-parallel ranks: reduce-scatter the
/// gradients, update this rank's part, all-gather the parameters).
public final class GradientSync {
    let model: Llama
    let context: ParallelContext
    public let optimizer: AdamW
    /// ZeRO-1 scratch: the flat buffers padded to a multiple of the data degree.
    let padded: FloatBuffer?
    let shardGrads: FloatBuffer?
    let chunk: Int
    /// All-reduce granularity for data-parallel gradients.
    public static let bucketFloats = 1 << 22

    public init(model: Llama, context: ParallelContext, adamw: AdamWConfig) {
        self.model = model
        self.context = context
        let total = model.layout.total, dp = context.data.size
        if context.zero1 && dp > 1 {
            chunk = (total + dp - 1) / dp
            let lo = min(total, context.data.rank * chunk), hi = min(total, lo + chunk)
            optimizer = AdamW(config: adamw, layout: model.layout, range: lo..<hi)
            padded = FloatBuffer(count: chunk * dp)
            shardGrads = FloatBuffer(count: chunk)
        } else {
            chunk = total
            optimizer = AdamW(config: adamw, layout: model.layout)
            padded = nil
            shardGrads = nil
        }
    }

    /// Returns the global gradient norm before clipping.
    public func step(lr: Double, maxNorm: Double, threads: Int) -> Double {
        model.reduceReplicatedKVGradients()
        let G = model.grads.base, P = model.params.base, total = model.layout.total
        guard let padded, let shardGrads else {
            var i = 0
            while i < total, context.data.size > 1 {
                let n = min(Self.bucketFloats, total - i)
                context.data.allReduce(G + i, count: n, op: .sum)
                i += n
            }
            let local = model.localGradientSquaredNorm(G, range: 0..<total)
            let norm = GradClip.clip(G, count: total, maxNorm: maxNorm, globalSumOfSquares: context.tensor.allReduce(local))
            optimizer.update(params: P, grads: G, lr: lr, threads: threads)
            return norm
        }
        // ZeRO-1.
        padded.base.update(from: G, count: total)
        (padded.base + total).update(repeating: 0, count: padded.count - total)
        context.data.reduceScatter(send: padded.base, receive: shardGrads.base, countPerRank: chunk)
        let range = optimizer.range
        let local = model.localGradientSquaredNorm(shardGrads.base, range: range)
        let global = context.tensor.allReduce(context.data.allReduce(local))
        let norm = GradClip.clip(shardGrads.base, count: range.count, maxNorm: maxNorm, globalSumOfSquares: global)
        optimizer.update(params: P, grads: shardGrads.base, lr: lr, threads: threads)
        // Everyone's updated part back to everyone.
        let mine = padded.base + context.data.rank * chunk
        mine.update(from: P + range.lowerBound, count: range.count)
        context.data.allGather(send: mine, receive: padded.base, countPerRank: chunk)
        P.update(from: padded.base, count: total)
        return norm
    }
}
