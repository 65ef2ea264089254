/// What the forward pass keeps for backward (torchtitan's names): `none`
/// keeps every layer's activations; `full` keeps only each layer's input
/// and recomputes the layer during backward; `selective` keeps the matmul
/// outputs (Q|K|V after rotary, the attention's output, w1|w3's, the stream
/// after attention) and recomputes the cheap, large parts — the norms, the
/// attention's scores and probabilities (the T² part), the SwiGLU product —
/// as Korthikanti et al.'s selective recomputation. Recomputing runs the
/// same kernels on the same inputs, so results are bitwise those of `none`.
public enum ActivationCheckpoint: String, Codable, Sendable, CaseIterable {
    case none, selective, full
}

/// One activation per layer, or one buffer every layer shares when it is
/// recomputed in backward (the layer being worked on owns it). Under bf16
/// precision a per-layer activation is one shared fp32 working buffer plus
/// each layer's bf16 copy (`stored`): forward stores the layer's, backward
/// widens it back before working on the layer.
struct LayerBuffers {
    let buffers: [FloatBuffer]
    let stored: [BFloat16Buffer]
    init(buffers: [FloatBuffer], stored: [BFloat16Buffer] = []) { self.buffers = buffers; self.stored = stored }
    subscript(l: Int) -> FloatBuffer { buffers[buffers.count == 1 ? 0 : l] }
    func keep(_ l: Int) { if !stored.isEmpty { stored[l].store(buffers[0].base) } }
    func restore(_ l: Int) { if !stored.isEmpty { stored[l].load(into: buffers[0].base) } }
}

/// What the forward pass keeps for the backward pass, for one micro-batch of
/// `batch` sequences of `seqLen` tokens. Allocated once and reused each step.
public final class Activations {
    public let batch: Int
    public let seqLen: Int
    public let checkpoint: ActivationCheckpoint
    public var rows: Int { batch * seqLen }
    /// Sequence parallelism (Korthikanti et al.): outside the tensor-parallel
    /// region — the residual stream, the norms — each tensor rank keeps only
    /// its block of `localRows` consecutive rows.
    public let sequenceParallel: Bool
    public let localRows: Int
    /// bf16: the products' outputs and the norms' are rounded to bf16 as
    /// they are made, and kept per layer in 16 bits.
    public let precision: Precision
    /// bf16 without ZeRO-3: the working copy of the segments' rounded weights.
    var roundedWeights: RoundedWeights?
    let attention: AttentionShape
    /// Packed examples: a position holding this token starts a new segment,
    /// and attention never crosses into an earlier one (nil: one segment).
    public var separator: TokenID? {
        didSet { segmentStarts = separator == nil ? [] : [Int32](repeating: 0, count: rows) }
    }
    /// Where each row's segment starts within its sequence (with a separator).
    var segmentStarts: [Int32] = []

    /// Per layer (or one shared buffer, when recomputed): the residual
    /// stream entering the block, and after attention. Under sequence
    /// parallelism these, the norms, their rstd, the final norm and
    /// dResidual hold `localRows` rows.
    let residual: [FloatBuffer]     // [rows, dim] × (layers + 1); the last is the final stream; always kept
    let residualMid: LayerBuffers   // [rows, dim]
    let norm1: LayerBuffers, rstd1: LayerBuffers
    let qkv: LayerBuffers           // [rows, (heads + 2·kvHeads)·headDim], after rotary
    let probs: LayerBuffers         // [batch, heads, T, T]
    let attnOut: LayerBuffers       // [rows, heads·headDim]
    let norm2: LayerBuffers, rstd2: LayerBuffers
    let h13: LayerBuffers           // [rows, 2·ffn]: w1 and w3 outputs before gating
    let gated: LayerBuffers         // [rows, ffn]
    let finalNorm: FloatBuffer, finalRstd: FloatBuffer
    let logits: FloatBuffer         // [rows, vocab] ([rows, 1] rewards for a scalar head); becomes dLogits in backward

    // Backward scratch, shared by all layers.
    let dResidual: FloatBuffer, dNorm: FloatBuffer, dAttn: FloatBuffer
    let dQKV: FloatBuffer, dH13: FloatBuffer, dGated: FloatBuffer, dScores: FloatBuffer
    /// Tensor parallelism: a row-parallel layer's partial sum [rows, dim]
    /// before its all-reduce, and the per-row max / sum / target logit of
    /// the vocabulary-parallel cross-entropy [3, rows] (empty without it).
    let partial: FloatBuffer, rowStats: FloatBuffer
    /// Sequence parallelism (empty without it): a norm's output gathered
    /// from every tensor rank [rows, dim]; the stream's gradient gathered
    /// [rows, dim]; a reduce-scatter's result [localRows, dim] (forward's
    /// row-parallel sum, backward's input gradient).
    let gathered: FloatBuffer, dGathered: FloatBuffer, scattered: FloatBuffer

    /// Which activations a mode keeps per layer (the rest: one shared buffer).
    enum Kept { case perLayer, shared }
    static func kept(_ mode: ActivationCheckpoint) -> (mid: Kept, norms: Kept, qkv: Kept, probs: Kept, attnOut: Kept, h13: Kept, gated: Kept) {
        switch mode {
        case .none: return (.perLayer, .perLayer, .perLayer, .perLayer, .perLayer, .perLayer, .perLayer)
        case .selective: return (.perLayer, .shared, .perLayer, .shared, .perLayer, .perLayer, .shared)
        case .full: return (.shared, .shared, .shared, .shared, .shared, .shared, .shared)
        }
    }

    /// Floats allocated for one set of activations, without allocating them
    /// (a bf16 value counts half).
    public static func floatCount(config c: LlamaConfig, shard: TensorShard? = nil, batch: Int, seqLen: Int,
                                  checkpoint: ActivationCheckpoint = .none, sequenceParallel: Bool = false,
                                  precision: Precision = .fp32) -> Int {
        let sh = shard ?? .whole(c)
        let rows = batch * seqLen, sp = sequenceParallel && sh.size > 1, local = sp ? rows / sh.size : rows
        let a = AttentionShape(batch: batch, seqLen: seqLen, heads: sh.heads, kvHeads: sh.kvHeads, headDim: c.headDim)
        let k = kept(checkpoint)
        func n(_ kept: Kept) -> Int { kept == .perLayer ? c.layers : 1 }
        // A bf16 activation kept per layer: one fp32 working buffer and a half per layer.
        func m(_ kept: Kept, _ count: Int) -> Int {
            precision == .bf16 && kept == .perLayer ? count + (c.layers * count + 1) / 2 : n(kept) * count
        }
        let layers = c.layers * local * c.dim                                    // each layer's input, always kept
            + n(k.mid) * local * c.dim + m(k.norms, local * c.dim) * 2 + n(k.norms) * local * 2   // the stream after attention; both norms and their rstd
            + m(k.qkv, rows * a.qkvWidth) + m(k.probs, a.probsCount) + m(k.attnOut, rows * a.outWidth)
            + m(k.h13, rows * 2 * sh.ffn) + m(k.gated, rows * sh.ffn)
        let once = local * (2 * c.dim + 1) + rows * (c.scalarHead ? 1 : sh.vocab)   // final stream, final norm, logits (or rewards)
        let scratch = (local + rows) * c.dim + rows * (a.outWidth + a.qkvWidth + 3 * sh.ffn) + seqLen * seqLen
        let parallel = sh.size > 1 ? rows * (c.dim + 3) : 0
        let sequence = sp ? 2 * rows * c.dim + local * c.dim : 0
        return layers + once + scratch + parallel + sequence
    }

    /// Floats this instance holds (what `floatCount` predicts).
    public var allocatedFloats: Int {
        let halves = layerBuffers.map { $0.stored.reduce(0) { $0 + $1.count } }.reduce(0) { $0 + ($1 + 1) / 2 }
        let perLayer = layerBuffers.flatMap(\.buffers) + residual
        let single = [finalNorm, finalRstd, logits, dResidual, dNorm, dAttn, dQKV, dH13, dGated, dScores, partial, rowStats,
                      gathered, dGathered, scattered]
        return (perLayer + single).reduce(0) { $0 + $1.count } + halves
    }

    /// Activations of one tensor-parallel rank's piece (the whole model by default).
    public init(config c: LlamaConfig, shard: TensorShard? = nil, batch: Int, seqLen: Int, checkpoint: ActivationCheckpoint = .none,
                sequenceParallel: Bool = false, precision: Precision = .fp32) {
        precondition(seqLen <= c.maxSeqLen, "sequence length \(seqLen) exceeds the model's \(c.maxSeqLen)")
        let sh = shard ?? .whole(c)
        self.batch = batch
        self.seqLen = seqLen
        let rows = batch * seqLen
        let sp = sequenceParallel && sh.size > 1
        precondition(!sp || rows % sh.size == 0, "sequence parallelism splits \(rows) rows among \(sh.size) tensor ranks")
        self.sequenceParallel = sp
        let local = sp ? rows / sh.size : rows
        localRows = local
        self.precision = precision
        attention = AttentionShape(batch: batch, seqLen: seqLen, heads: sh.heads,
                                   kvHeads: sh.kvHeads, headDim: c.headDim)
        self.checkpoint = checkpoint
        func each(_ n: Int, _ count: Int) -> [FloatBuffer] { (0..<n).map { _ in FloatBuffer(count: count) } }
        let L = c.layers, k = Self.kept(checkpoint)
        func layer(_ kept: Kept, _ count: Int) -> LayerBuffers { LayerBuffers(buffers: each(kept == .perLayer ? L : 1, count)) }
        // bf16 keeps these per layer in 16 bits (the stream and rstd stay fp32).
        func half(_ kept: Kept, _ count: Int) -> LayerBuffers {
            guard precision == .bf16, kept == .perLayer else { return layer(kept, count) }
            return LayerBuffers(buffers: [FloatBuffer(count: count)], stored: (0..<L).map { _ in BFloat16Buffer(count: count) })
        }
        residual = each(L + 1, local * c.dim)
        residualMid = layer(k.mid, local * c.dim)
        norm1 = half(k.norms, local * c.dim); rstd1 = layer(k.norms, local)
        qkv = half(k.qkv, rows * attention.qkvWidth)
        probs = half(k.probs, attention.probsCount)
        attnOut = half(k.attnOut, rows * attention.outWidth)
        norm2 = half(k.norms, local * c.dim); rstd2 = layer(k.norms, local)
        h13 = half(k.h13, rows * 2 * sh.ffn)
        gated = half(k.gated, rows * sh.ffn)
        finalNorm = FloatBuffer(count: local * c.dim)
        finalRstd = FloatBuffer(count: local)
        logits = FloatBuffer(count: rows * (c.scalarHead ? 1 : sh.vocab))
        dResidual = FloatBuffer(count: local * c.dim)
        dNorm = FloatBuffer(count: rows * c.dim)
        dAttn = FloatBuffer(count: rows * attention.outWidth)
        dQKV = FloatBuffer(count: rows * attention.qkvWidth)
        dH13 = FloatBuffer(count: rows * 2 * sh.ffn)
        dGated = FloatBuffer(count: rows * sh.ffn)
        dScores = FloatBuffer(count: seqLen * seqLen)
        partial = FloatBuffer(count: sh.size > 1 ? rows * c.dim : 0)
        rowStats = FloatBuffer(count: sh.size > 1 ? 3 * rows : 0)
        gathered = FloatBuffer(count: sp ? rows * c.dim : 0)
        dGathered = FloatBuffer(count: sp ? rows * c.dim : 0)
        scattered = FloatBuffer(count: sp ? local * c.dim : 0)
    }

    /// bf16: layer `l`'s activations that backward reads, stored in 16 bits
    /// (after its forward) or widened back (before its backward).
    func keep(_ l: Int) { for b in layerBuffers { b.keep(l) } }
    func restore(_ l: Int) { for b in layerBuffers { b.restore(l) } }

    /// Every activation a layer has (kept per layer or shared).
    private var layerBuffers: [LayerBuffers] { [residualMid, norm1, rstd1, qkv, probs, attnOut, norm2, rstd2, h13, gated] }
}
