import Foundation

/// The Llama 2 decoder: token embedding, `layers` blocks of
/// (RMSNorm → causal GQA attention with rotary embeddings → residual,
///  RMSNorm → SwiGLU feed-forward → residual), a final RMSNorm and an untied
/// output layer. Parameters and gradients are each one flat buffer laid out
/// by `ParameterLayout`.
///
/// With tensor parallelism (Megatron-LM) this instance is one rank's piece:
/// its query/KV heads and FFN columns (column-parallel wq|wk|wv, w1|w3; row-
/// parallel wo, w2) and a block of the vocabulary (embedding and output).
/// Forward all-reduces the row-parallel outputs and the embedding; backward
/// all-reduces the input gradients of the column-parallel products and of
/// the output layer. The residual stream and RMSNorm are replicated — or,
/// with sequence parallelism (Korthikanti et al. 2022; the activations say
/// which), split by rows across the tensor group: each norm's output is
/// all-gathered into the column-parallel products, and the row-parallel
/// products' all-reduces become reduce-scatters (backward: the reverse).
public final class Llama {
    public let config: LlamaConfig
    public let shard: TensorShard
    public let layout: ParameterLayout
    public let params: FloatBuffer
    public let grads: FloatBuffer
    let rope: RotaryTable
    /// The tensor-parallel group, and the ranks sharing this rank's KV heads.
    let tp: Communicator
    let kvGroup: Communicator
    /// ZeRO-2/3 across the data-parallel ranks, when the job shards
    /// gradients or weights: forward and backward gather each segment's
    /// weights before using them and hand over its gradients as they are done.
    public let shards: ParameterShards?
    /// Whether training splits the stream by rows across the tensor group
    /// (the activations it makes say so too; evaluation may run without).
    public let sequenceParallel: Bool
    /// bf16: the products read bf16-rounded weights and the kept activations are bf16.
    public let precision: Precision

    /// `zero` ≥ 2 over a `dataGroup` of several ranks shards the gradients
    /// (and at 3 the weights) of this model across that group. A model that
    /// does not train (PPO's reference and reward models) never touches its
    /// gradients' pages.
    public init(config: LlamaConfig, shard: TensorShard? = nil, tensorGroup: Communicator? = nil,
                zero: Int = 0, dataGroup: Communicator? = nil, sequenceParallel: Bool = false,
                precision: Precision = .fp32, trains: Bool = true) throws(ConfigError) {
        try config.validate()
        self.config = config
        let sh = shard ?? .whole(config)
        self.shard = sh
        tp = tensorGroup ?? SingleProcessCommunicator()
        precondition(tp.size == sh.size && tp.rank == sh.rank, "the tensor group does not match the shard")
        // Ranks holding the same KV heads sum those heads' gradients.
        kvGroup = sh.kvReplicas > 1 ? tp.split(color: sh.kvHeadStart, key: sh.rank) : SingleProcessCommunicator()
        layout = ParameterLayout(config: config, shard: sh)
        self.sequenceParallel = sequenceParallel && sh.size > 1
        let data = dataGroup ?? SingleProcessCommunicator()
        let stage = data.size > 1 && zero >= 2 ? min(zero, 3) : 0
        // Sharded, the whole-model buffers are address space touched only
        // by whole-model operations (the gradients' never): see ParameterShards.
        params = stage == 3 ? FloatBuffer(pagedCount: layout.total) : FloatBuffer(count: layout.total)
        grads = stage >= 2 || !trains ? FloatBuffer(pagedCount: layout.total) : FloatBuffer(count: layout.total)
        shards = stage >= 2 ? ParameterShards(stage: stage, layout: layout, params: params, data: data, precision: precision) : nil
        self.precision = precision
        rope = RotaryTable(headDim: config.headDim, maxSeq: config.maxSeqLen, theta: config.ropeTheta)
    }

    /// Normal(0, std) for matrices, with the two projections that write into
    /// the residual stream (wo, w2) scaled by 1/√(2·layers) as in GPT-2 and
    /// torchtitan; RMSNorm gains start at 1. Each tensor is one stream keyed
    /// by (seed, tensor): element i of the global tensor is that stream's
    /// i-th draw, so every tensor-parallel layout starts from the same model.
    public func initialize(seed: UInt64, std: Double = 0.02) {
        let residualScale = 1 / (2 * Double(config.layers)).squareRoot()
        // Under ZeRO-3 a rank draws only its own part, straight into its weights.
        let part: Range<Int>?, base: UnsafeMutablePointer<Float>
        if let shards, let weights = shards.weights {
            shards.invalidate()
            (part, base) = (shards.owned, weights.base - shards.owned.lowerBound)
        } else {
            (part, base) = (nil, params.base)
        }
        for (t, spec) in layout.specs.enumerated() {
            let whole = spec.offset..<(spec.offset + spec.count)
            let drawn = part.map { whole.clamped(to: $0) } ?? whole
            guard !drawn.isEmpty else { continue }
            if spec.shape.count == 1 {
                (base + drawn.lowerBound).update(repeating: 1, count: drawn.count)
                continue
            }
            let isResidualProjection = spec.name.hasSuffix("wo.weight") || spec.name.hasSuffix("w2.weight")
            let s = isResidualProjection ? std * residualScale : std
            let stream = SplitMix64.mix(seed, UInt64(t))
            let cols = spec.shape[1], globalCols = spec.globalShape[1]
            let (r0, c0) = spec.splitAxis == 1 ? (0, spec.sliceStart) : (spec.sliceStart, 0)
            for j in drawn {
                let (r, c) = ((j - spec.offset) / cols, (j - spec.offset) % cols)
                base[j] = Float(SplitMix64.normal(seed: stream, index: (r0 + r) * globalCols + c0 + c) * s)
            }
        }
    }


    public func zeroGradients() { grads.zero() }

    var parallel: Bool { shard.size > 1 }

    /// This rank's output columns: its block of the vocabulary, or the one
    /// reward of a scalar head (replicated on every tensor-parallel rank).
    var outputWidth: Int { config.scalarHead ? 1 : shard.vocab }

    // MARK: forward

    /// Runs the model on tokens[batch·seqLen] and leaves this rank's logits
    /// in `acts`. Under ZeRO-3 each segment's weights are gathered just
    /// before it runs (the head's stay for the backward that may follow).
    public func forwardLogits(tokens: UnsafePointer<TokenID>, acts: Activations) {
        let c = config, rows = acts.rows, n = rows * c.dim, head = c.layers + 1, sp = acts.sequenceParallel
        prepareWeights(0, acts, next: 1)
        // Each tensor rank looks up its block of the vocabulary: a partial sum.
        Embedding.forward(out: sp ? acts.partial.base : acts.residual[0].base, tokens: tokens, table: weights(0, acts) + layout.embedding,
                          count: rows, dim: c.dim, vocabStart: shard.vocabStart, vocab: shard.vocab)
        if sp {
            tp.reduceScatter(send: acts.partial.base, receive: acts.residual[0].base, countPerRank: acts.localRows * c.dim)
        } else if parallel {
            tp.allReduce(acts.residual[0].base, count: n, op: .sum)
        }
        if let sep = acts.separator {
            for b in 0..<acts.batch {
                var start: Int32 = 0
                for t in 0..<acts.seqLen {
                    if tokens[b * acts.seqLen + t] == sep { start = Int32(t) }
                    acts.segmentStarts[b * acts.seqLen + t] = start
                }
            }
        }
        for l in 0..<c.layers {
            prepareWeights(l + 1, acts, next: l + 2)
            layerForward(l, acts: acts, writeOutput: true)
        }
        prepareWeights(head, acts)
        let P = weights(head, acts)
        norm(acts.finalNorm, rstd: acts.finalRstd, x: acts.residual[c.layers].base, gain: P + layout.finalNorm, acts: acts)
        Matmul.linearForward(y: acts.logits.base, x: allRows(acts.finalNorm, acts), w: P + layout.output,
                             rows: rows, inFeatures: c.dim, outFeatures: outputWidth)
    }

    /// A norm's output as the tensor-parallel products read it: every row —
    /// all-gathered from the tensor ranks under sequence parallelism.
    private func allRows(_ local: FloatBuffer, _ acts: Activations) -> UnsafeMutablePointer<Float> {
        guard acts.sequenceParallel else { return local.base }
        tp.allGather(send: local.base, receive: acts.gathered.base, countPerRank: acts.localRows * config.dim)
        return acts.gathered.base
    }

    /// The gradient of the stream leaving a block as a row-parallel product's
    /// backward reads it: every row (all-gathered under sequence parallelism).
    private func allRowsOfGradient(_ dx: UnsafeMutablePointer<Float>, _ acts: Activations) -> UnsafeMutablePointer<Float> {
        guard acts.sequenceParallel else { return dx }
        tp.allGather(send: dx, receive: acts.dGathered.base, countPerRank: acts.localRows * config.dim)
        return acts.dGathered.base
    }

    /// A column-parallel product's input gradient (a partial sum over the
    /// tensor ranks) summed: all-reduced, or under sequence parallelism
    /// reduce-scattered to this rank's rows. Returns where the sum is.
    private func sumInputGradient(_ dn: UnsafeMutablePointer<Float>, _ acts: Activations) -> UnsafeMutablePointer<Float> {
        if acts.sequenceParallel {
            tp.reduceScatter(send: dn, receive: acts.scattered.base, countPerRank: acts.localRows * config.dim)
            return acts.scattered.base
        }
        if parallel { tp.allReduce(dn, count: acts.rows * config.dim, op: .sum) }
        return dn
    }


    /// Block `l` from its input (acts.residual[l]): attention, then the
    /// feed-forward; with `writeOutput` its output stream too (the next
    /// block's input). Backward calls it again without the output to
    /// recompute what `full` checkpointing did not keep: the same kernels
    /// on the same inputs, so the same bits.
    private func layerForward(_ l: Int, acts: Activations, writeOutput: Bool) {
        let c = config, rows = acts.rows, s = acts.attention, P = weights(l + 1, acts)
        let o = layout.layers[l]
        let x = acts.residual[l].base, mid = acts.residualMid[l].base
        // Attention block. wq, wk, wv are adjacent: one product gives Q|K|V.
        norm(acts.norm1[l], rstd: acts.rstd1[l], x: x, gain: P + o.attentionNorm, acts: acts)
        let qkv = acts.qkv[l].base
        Matmul.linearForward(y: qkv, x: allRows(acts.norm1[l], acts), w: P + o.wq,
                             rows: rows, inFeatures: c.dim, outFeatures: s.qkvWidth)
        bf16(qkv, rows * s.qkvWidth, acts)
        Rotary.apply(qkv, table: rope, rows: rows, seqLen: acts.seqLen, heads: s.heads + s.kvHeads, ld: s.qkvWidth)
        bf16(qkv, rows * s.qkvWidth, acts)
        attention(l, acts: acts)
        rowParallel(out: mid, residual: x, input: acts.attnOut[l].base, weight: P + o.wo,
                    inFeatures: s.outWidth, acts: acts)
        // Feed-forward block. w1 and w3 are adjacent: one product gives h1|h3.
        norm(acts.norm2[l], rstd: acts.rstd2[l], x: mid, gain: P + o.ffnNorm, acts: acts)
        Matmul.linearForward(y: acts.h13[l].base, x: allRows(acts.norm2[l], acts), w: P + o.w1,
                             rows: rows, inFeatures: c.dim, outFeatures: 2 * shard.ffn)
        bf16(acts.h13[l].base, rows * 2 * shard.ffn, acts)
        swiGLU(l, acts: acts)
        guard writeOutput else { return }
        acts.keep(l)
        rowParallel(out: acts.residual[l + 1].base, residual: mid, input: acts.gated[l].base, weight: P + o.w2,
                    inFeatures: shard.ffn, acts: acts)
    }

    /// RMSNorm of this rank's rows of the stream (all of them without
    /// sequence parallelism), its output rounded under bf16.
    private func norm(_ y: FloatBuffer, rstd: FloatBuffer, x: UnsafePointer<Float>, gain: UnsafePointer<Float>, acts: Activations) {
        RMSNorm.forward(y: y.base, rstd: rstd.base, x: x, gain: gain, rows: acts.localRows, dim: config.dim, eps: config.normEps)
        bf16(y.base, acts.localRows * config.dim, acts)
    }

    /// Causal attention of block `l` from its Q|K|V: the output and the probabilities.
    private func attention(_ l: Int, acts: Activations) {
        acts.segmentStarts.withUnsafeBufferPointer { starts in
            Attention.forward(out: acts.attnOut[l].base, probs: acts.probs[l].base, qkv: acts.qkv[l].base, shape: acts.attention,
                              segmentStarts: acts.separator == nil ? nil : starts.baseAddress)
        }
        bf16(acts.attnOut[l].base, acts.rows * acts.attention.outWidth, acts)
        bf16(acts.probs[l].base, acts.attention.probsCount, acts)
    }

    /// Block `l`'s gated product from its w1|w3 output.
    private func swiGLU(_ l: Int, acts: Activations) {
        SwiGLU.forward(g: acts.gated[l].base, h: acts.h13[l].base, rows: acts.rows, hidden: shard.ffn)
        bf16(acts.gated[l].base, acts.rows * shard.ffn, acts)
    }

    /// What block `l`'s backward reads and the checkpoint mode did not keep,
    /// recomputed from what it did: everything from the block's input
    /// (`full`), or the norms, the attention's probabilities and the SwiGLU
    /// product from the kept matmul outputs (`selective`).
    private func recompute(_ l: Int, acts: Activations) {
        let P = weights(l + 1, acts), o = layout.layers[l]
        switch acts.checkpoint {
        case .none: return
        case .full: layerForward(l, acts: acts, writeOutput: false)
        case .selective:
            norm(acts.norm1[l], rstd: acts.rstd1[l], x: acts.residual[l].base, gain: P + o.attentionNorm, acts: acts)
            attention(l, acts: acts)
            norm(acts.norm2[l], rstd: acts.rstd2[l], x: acts.residualMid[l].base, gain: P + o.ffnNorm, acts: acts)
            swiGLU(l, acts: acts)
        }
    }

    /// out = residual + input·Wᵀ, where W is row-parallel: each rank's product
    /// is a partial sum, all-reduced before the residual add (reduce-scattered
    /// to this rank's rows under sequence parallelism).
    private func rowParallel(out: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>,
                             input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                             inFeatures: Int, acts: Activations) {
        let rows = acts.rows, d = config.dim
        if !parallel {
            out.update(from: residual, count: rows * d)
            Matmul.linearForward(y: out, x: input, w: weight, rows: rows, inFeatures: inFeatures,
                                 outFeatures: d, accumulate: true)
            return
        }
        var part = acts.partial.base
        Matmul.linearForward(y: part, x: input, w: weight, rows: rows, inFeatures: inFeatures, outFeatures: d)
        if acts.sequenceParallel {
            tp.reduceScatter(send: part, receive: acts.scattered.base, countPerRank: acts.localRows * d)
            part = acts.scattered.base
        } else {
            tp.allReduce(part, count: rows * d, op: .sum)
        }
        for i in 0..<(acts.localRows * d) { out[i] = residual[i] + part[i] }
    }

    /// Forward only: the summed cross-entropy and the number of targets counted.
    public func loss(tokens: UnsafePointer<TokenID>, targets: UnsafePointer<TokenID>,
                     acts: Activations) -> (lossSum: Double, counted: Int) {
        forwardLogits(tokens: tokens, acts: acts)
        return crossEntropy(targets: targets, acts: acts, scale: nil)
    }

    private func crossEntropy(targets: UnsafePointer<TokenID>, acts: Activations, scale: Float?) -> (lossSum: Double, counted: Int) {
        if config.scalarHead {
            return RewardPairs.run(rewards: acts.logits.base, targets: targets, batch: acts.batch, seqLen: acts.seqLen, scale: scale)
        }
        if parallel {
            return VocabParallelCrossEntropy.run(logits: acts.logits.base, targets: targets, rows: acts.rows,
                                                 vocab: shard.vocab, vocabStart: shard.vocabStart,
                                                 stats: acts.rowStats.base, group: tp, scale: scale)
        }
        if let scale {
            return CrossEntropy.forwardBackward(logits: acts.logits.base, targets: targets,
                                                rows: acts.rows, vocab: config.vocabSize, scale: scale)
        }
        return CrossEntropy.forward(logits: acts.logits.base, targets: targets, rows: acts.rows, vocab: config.vocabSize)
    }

    // MARK: backward

    /// Forward and backward for one micro-batch. Gradients are added to
    /// `grads` (the model's own by default; a thread working on part of the
    /// batch passes its own) with the loss scaled by `lossScale` (1 / targets
    /// in the global batch), so micro-batches sum to the gradient of the
    /// global mean loss.
    @discardableResult
    public func forwardBackward(tokens: UnsafePointer<TokenID>, targets: UnsafePointer<TokenID>,
                                acts: Activations, grads: FloatBuffer? = nil,
                                lossScale: Float) -> (lossSum: Double, counted: Int) {
        precondition(shards == nil || grads == nil || grads === self.grads, "a sharded model's gradients are its own")
        forwardLogits(tokens: tokens, acts: acts)
        let result = crossEntropy(targets: targets, acts: acts, scale: lossScale)
        backward(tokens: tokens, acts: acts, grads: grads ?? self.grads)
        return result
    }

    /// Backward from dLogits (held in acts.logits) to every parameter gradient.
    func backward(tokens: UnsafePointer<TokenID>, acts: Activations, grads: FloatBuffer) {
        precondition(acts.sequenceParallel == sequenceParallel && acts.precision == precision,
                     "training activations must be laid out, and kept in the precision, the model trains with")
        let c = config, rows = acts.rows, s = acts.attention, local = acts.localRows
        var P = weights(c.layers + 1, acts), G = gradients(c.layers + 1, grads)
        let dx = acts.dResidual.base, dn = acts.dNorm.base
        // The output layer is vocabulary-parallel: its input gradient is a
        // partial sum. A scalar head is replicated: each rank has all of it
        // (under sequence parallelism it takes its own rows).
        Matmul.linearBackward(dx: dn, dw: G + layout.output, dy: acts.logits.base, x: allRows(acts.finalNorm, acts),
                              w: P + layout.output, rows: rows, inFeatures: c.dim, outFeatures: outputWidth)
        let dFinal = !c.scalarHead ? sumInputGradient(dn, acts) : acts.sequenceParallel ? dn + shard.rank * local * c.dim : dn
        dx.update(repeating: 0, count: local * c.dim)
        RMSNorm.backward(dx: dx, dGain: G + layout.finalNorm, dy: dFinal, x: acts.residual[c.layers].base,
                         gain: P + layout.finalNorm, rstd: acts.finalRstd.base, rows: local, dim: c.dim)
        segmentDone(c.layers + 1)
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            prepareWeights(l + 1, acts, next: l >= 1 ? l : nil)   // the embedding's backward reads no weights
            P = weights(l + 1, acts); G = gradients(l + 1, grads)
            acts.restore(l)
            recompute(l, acts: acts)
            let o = layout.layers[l]
            // dx is the gradient of the stream leaving the block; the residual
            // passes it through unchanged, and each branch adds its part.
            // w2 is row-parallel: its input gradient needs no communication
            // (under sequence parallelism, the gathered rows of dx).
            Matmul.linearBackward(dx: acts.dGated.base, dw: G + o.w2, dy: allRowsOfGradient(dx, acts), x: acts.gated[l].base,
                                  w: P + o.w2, rows: rows, inFeatures: shard.ffn, outFeatures: c.dim)
            SwiGLU.backward(dh: acts.dH13.base, dg: acts.dGated.base, h: acts.h13[l].base,
                            rows: rows, hidden: shard.ffn)
            // w1|w3 are column-parallel: the input gradient is summed over ranks.
            Matmul.linearBackward(dx: dn, dw: G + o.w1, dy: acts.dH13.base, x: allRows(acts.norm2[l], acts),
                                  w: P + o.w1, rows: rows, inFeatures: c.dim, outFeatures: 2 * shard.ffn)
            RMSNorm.backward(dx: dx, dGain: G + o.ffnNorm, dy: sumInputGradient(dn, acts), x: acts.residualMid[l].base,
                             gain: P + o.ffnNorm, rstd: acts.rstd2[l].base, rows: local, dim: c.dim)
            // Attention block, the same pattern.
            Matmul.linearBackward(dx: acts.dAttn.base, dw: G + o.wo, dy: allRowsOfGradient(dx, acts), x: acts.attnOut[l].base,
                                  w: P + o.wo, rows: rows, inFeatures: s.outWidth, outFeatures: c.dim)
            Attention.backward(dqkv: acts.dQKV.base, dOut: acts.dAttn.base, qkv: acts.qkv[l].base,
                               probs: acts.probs[l].base, scratch: acts.dScores.base, shape: s)
            Rotary.apply(acts.dQKV.base, table: rope, rows: rows, seqLen: acts.seqLen,
                         heads: s.heads + s.kvHeads, ld: s.qkvWidth, inverse: true)
            Matmul.linearBackward(dx: dn, dw: G + o.wq, dy: acts.dQKV.base, x: allRows(acts.norm1[l], acts),
                                  w: P + o.wq, rows: rows, inFeatures: c.dim, outFeatures: s.qkvWidth)
            RMSNorm.backward(dx: dx, dGain: G + o.attentionNorm, dy: sumInputGradient(dn, acts), x: acts.residual[l].base,
                             gain: P + o.attentionNorm, rstd: acts.rstd1[l].base, rows: local, dim: c.dim)
            segmentDone(l + 1)
        }
        Embedding.backward(dTable: gradients(0, grads) + layout.embedding, dOut: allRowsOfGradient(dx, acts), tokens: tokens,
                           count: rows, dim: c.dim, vocabStart: shard.vocabStart, vocab: shard.vocab)
        segmentDone(0)
    }

    /// ZeRO-2/3: backward has finished segment `s` (0 the embedding, l + 1
    /// block l, layers + 1 the head): its gradients (their tensor-group
    /// copies first summed) handed to the data ranks that own them.
    private func segmentDone(_ s: Int) {
        guard let shards else { return }
        sumTensorCopies(segment: s, in: shards.gradientBase(s))
        shards.reduceGradients(s)
    }

    /// The base segment `s`'s weights are read at with global offsets: the
    /// gathered copy under ZeRO-3, else the model's own buffer.
    @inline(__always) private func weights(_ s: Int, _ acts: Activations) -> UnsafeMutablePointer<Float> {
        shards?.weightBase(s) ?? acts.roundedWeights?.base(s) ?? params.base
    }

    /// Segment `s`'s weights made ready for its products: gathered under
    /// ZeRO-3 (collective; `next`, the segment used after it, starts
    /// gathering meanwhile), rounded under bf16 — into the activations' own
    /// working copy otherwise, so that batch threads do not share one.
    private func prepareWeights(_ s: Int, _ acts: Activations, next: Int? = nil) {
        shards?.gather(s, next: next)
        acts.roundedWeights?.stage(s, from: params.base)
    }

    /// Activations for this model as it trains: laid out for its sequence
    /// parallelism, kept in its precision, with their own rounded weights
    /// under bf16 without ZeRO-3.
    public func makeActivations(batch: Int, seqLen: Int, checkpoint: ActivationCheckpoint = .none) -> Activations {
        let acts = Activations(config: config, shard: shard, batch: batch, seqLen: seqLen, checkpoint: checkpoint,
                               sequenceParallel: sequenceParallel, precision: precision)
        if precision == .bf16 && shards?.weights == nil { acts.roundedWeights = RoundedWeights(layout: layout) }
        return acts
    }

    /// bf16: a kernel's output rounded as it is made (the next kernel, and
    /// backward, read the same bf16 values).
    @inline(__always) private func bf16(_ p: UnsafeMutablePointer<Float>, _ count: Int, _ acts: Activations) {
        if acts.precision == .bf16 { BFloat16.round(p, count: count) }
    }

    /// The base segment `s`'s gradients are written at: the segment buffer
    /// under ZeRO-2/3, else the buffer backward was given.
    @inline(__always) private func gradients(_ s: Int, _ buffer: FloatBuffer) -> UnsafeMutablePointer<Float> {
        shards?.gradientBase(s) ?? buffer.base
    }

    /// Parameters several tensor ranks each hold a copy of, whose gradients
    /// each rank has only its share of: summed over the copies, so that
    /// every copy takes the same update — once a step, after the
    /// micro-batches have accumulated (under ZeRO-2/3 per segment and
    /// micro-batch instead, in `segmentDone`).
    public func reduceTensorCopies() {
        guard shards == nil else { return }
        for s in 0...(config.layers + 1) { sumTensorCopies(segment: s, in: grads.base) }
    }

    /// Segment `s`'s such gradients in G: a KV head replicated on several
    /// tensor ranks is one parameter; under sequence parallelism each rank's
    /// norm gains saw only its rows.
    private func sumTensorCopies(segment s: Int, in G: UnsafeMutablePointer<Float>) {
        var gains: [Int] = []
        if s >= 1 && s <= config.layers {
            let o = layout.layers[s - 1]
            if shard.kvReplicas > 1 { kvGroup.allReduce(G + o.wk, count: 2 * shard.kvHeads * config.headDim * config.dim, op: .sum) }
            gains = [o.attentionNorm, o.ffnNorm]
        } else if s == config.layers + 1 {
            gains = [layout.finalNorm]
        }
        guard sequenceParallel else { return }
        for o in gains { tp.allReduce(G + o, count: config.dim, op: .sum) }
    }

    /// Σ g² over the gradients of parameters [range] (g[0] is parameter
    /// range.lowerBound), counting each piece that several tensor-parallel
    /// ranks hold identically once (only its first copy adds it). Summed over
    /// the tensor group — and over the data group when each data rank holds a
    /// different range (ZeRO-1) — it is the square of the true global norm.
    public func localGradientSquaredNorm(_ g: UnsafePointer<Float>, range: Range<Int>) -> Double {
        var total = 0.0
        for spec in layout.specs {
            // Copies sit on consecutive ranks (gains: all of them; a KV head:
            // its replicas), so the first copy is on a rank divisible by their number.
            guard shard.rank % spec.copies == 0 else { continue }
            let lo = max(spec.offset, range.lowerBound), hi = min(spec.offset + spec.count, range.upperBound)
            if lo < hi { total += FastMath.sumOfSquares(g + (lo - range.lowerBound), count: hi - lo) }
        }
        return total
    }
}
