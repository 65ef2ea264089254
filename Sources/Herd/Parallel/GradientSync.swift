/// Everything between the last backward of a step and the next forward:
/// gradients made global across data-parallel ranks, clipped on the true
/// global norm, and the AdamW update — plain, or with ZeRO-1 (optimizer
/// state sharded over the data-parallel ranks: reduce-scatter the
/// gradients, update this rank's part, all-gather the parameters), or with
/// ZeRO-2/3, whose gradients backward already reduce-scattered into each
/// rank's part (`ParameterShards`): update that part, and at stage 2
/// all-gather the parameters (stage 3 gathers them when next used).
public final class GradientSync {
    let model: Llama
    let context: ParallelContext
    public let optimizer: AdamW
    /// The data ranks' parts and the model's segments (any ZeRO stage).
    let parts: DataParts
    /// ZeRO-1: this rank's part of the summed gradients.
    let shardGrads: FloatBuffer?
    /// Stages 0 and 1: how gradients are summed over the data ranks (in bf16 under bf16 precision).
    let exchange: GradientExchange
    /// All-reduce granularity for data-parallel gradients.
    public static let bucketFloats = 1 << 22

    public init(model: Llama, context: ParallelContext, adamw: AdamWConfig) {
        self.model = model
        self.context = context
        parts = model.shards?.layout ?? DataParts(layout: model.layout, ranks: context.data.size, rank: context.data.rank)
        if model.shards != nil || context.shardsOptimizer {
            optimizer = AdamW(config: adamw, layout: model.layout, range: parts.owned)
        } else {
            optimizer = AdamW(config: adamw, layout: model.layout)
        }
        shardGrads = model.shards == nil && context.shardsOptimizer ? FloatBuffer(count: parts.owned.count) : nil
        exchange = GradientExchange(group: context.data, precision: model.precision,
                                    largestMessage: max(parts.largestSegment, min(Self.bucketFloats, model.layout.total)),
                                    largestBlock: min(parts.largestSegment, parts.owned.count))
    }

    /// Returns the global gradient norm before clipping.
    public func step(lr: Double, maxNorm: Double, threads: Int) -> Double {
        if let shards = model.shards { return shardedStep(shards, lr: lr, maxNorm: maxNorm, threads: threads) }
        model.reduceTensorCopies()
        let G = model.grads.base, P = model.params.base, total = model.layout.total
        guard let shardGrads else {
            var i = 0
            while i < total, context.data.size > 1 {
                let n = min(Self.bucketFloats, total - i)
                exchange.allReduce(G + i, count: n)
                i += n
            }
            let local = model.localGradientSquaredNorm(G, range: 0..<total)
            let norm = GradClip.clip(G, count: total, maxNorm: maxNorm, globalSumOfSquares: context.tensor.allReduce(local))
            optimizer.update(params: P, grads: G, lr: lr, threads: threads)
            return norm
        }
        // ZeRO-1: reduce-scatter segment by segment straight into this rank's part.
        for seg in parts.segments {
            exchange.reduceScatter(send: G + seg.lowerBound, receive: shardGrads.base + parts.offsetInPart(seg), counts: parts.counts(seg))
        }
        let range = optimizer.range
        let local = model.localGradientSquaredNorm(shardGrads.base, range: range)
        let global = context.tensor.allReduce(context.data.allReduce(local))
        let norm = GradClip.clip(shardGrads.base, count: range.count, maxNorm: maxNorm, globalSumOfSquares: global)
        optimizer.update(params: P, grads: shardGrads.base, lr: lr, threads: threads)
        allGatherParameters()
        return norm
    }

    /// Everyone's updated part back to everyone, in place, segment by segment.
    private func allGatherParameters() {
        let P = model.params.base
        for seg in parts.segments {
            context.data.allGather(send: P + max(seg.lowerBound, min(parts.owned.lowerBound, seg.upperBound)), receive: P + seg.lowerBound,
                                   counts: parts.counts(seg))
        }
    }

    /// ZeRO-2/3: this rank's part of the summed gradients is ready.
    private func shardedStep(_ shards: ParameterShards, lr: Double, maxNorm: Double, threads: Int) -> Double {
        let range = optimizer.range, G = shards.gradients.base
        let local = model.localGradientSquaredNorm(G, range: range)
        let global = context.tensor.allReduce(context.data.allReduce(local))
        let norm = GradClip.clip(G, count: range.count, maxNorm: maxNorm, globalSumOfSquares: global)
        if let weights = shards.weights {
            shards.invalidate()
            optimizer.update(params: weights.base - range.lowerBound, grads: G, lr: lr, threads: threads)
        } else {
            optimizer.update(params: model.params.base, grads: G, lr: lr, threads: threads)
            allGatherParameters()
        }
        shards.gradients.zero()
        return norm
    }
}
