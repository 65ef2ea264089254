/// What the forward pass keeps for the backward pass, for one micro-batch of
/// `batch` sequences of `seqLen` tokens. Allocated once and reused each step.
public final class Activations {
    public let batch: Int
    public let seqLen: Int
    public var rows: Int { batch * seqLen }
    let attention: AttentionShape
    /// Packed examples: a position holding this token starts a new segment,
    /// and attention never crosses into an earlier one (nil: one segment).
    public var separator: TokenID? {
        didSet { segmentStarts = separator == nil ? [] : [Int32](repeating: 0, count: rows) }
    }
    /// Where each row's segment starts within its sequence (with a separator).
    var segmentStarts: [Int32] = []

    /// Per layer: the residual stream entering the block, and after attention.
    let residual: [FloatBuffer]     // [rows, dim] × (layers + 1); the last is the final stream
    let residualMid: [FloatBuffer]  // [rows, dim] × layers
    let norm1: [FloatBuffer], rstd1: [FloatBuffer]
    let qkv: [FloatBuffer]          // [rows, (heads + 2·kvHeads)·headDim], after rotary
    let probs: [FloatBuffer]        // [batch, heads, T, T]
    let attnOut: [FloatBuffer]      // [rows, heads·headDim]
    let norm2: [FloatBuffer], rstd2: [FloatBuffer]
    let h13: [FloatBuffer]          // [rows, 2·ffn]: w1 and w3 outputs before gating
    let gated: [FloatBuffer]        // [rows, ffn]
    let finalNorm: FloatBuffer, finalRstd: FloatBuffer
    let logits: FloatBuffer         // [rows, vocab] ([rows, 1] rewards for a scalar head); becomes dLogits in backward

    // Backward scratch, shared by all layers.
    let dResidual: FloatBuffer, dNorm: FloatBuffer, dAttn: FloatBuffer
    let dQKV: FloatBuffer, dH13: FloatBuffer, dGated: FloatBuffer, dScores: FloatBuffer
    /// Tensor parallelism: a row-parallel layer's partial sum [rows, dim]
    /// before its all-reduce, and the per-row max / sum / target logit of
    /// the vocabulary-parallel cross-entropy [3, rows] (empty without it).
    let partial: FloatBuffer, rowStats: FloatBuffer

    /// Floats allocated for one set of activations, without allocating them.
    public static func floatCount(config c: LlamaConfig, shard: TensorShard? = nil, batch: Int, seqLen: Int) -> Int {
        let sh = shard ?? .whole(c)
        let rows = batch * seqLen
        let a = AttentionShape(batch: batch, seqLen: seqLen, heads: sh.heads, kvHeads: sh.kvHeads, headDim: c.headDim)
        let perLayer = rows * (4 * c.dim + 2 + a.qkvWidth + a.outWidth + 3 * sh.ffn) + a.probsCount
        let once = rows * (2 * c.dim + 1 + (c.scalarHead ? 1 : sh.vocab))   // final stream, final norm, logits (or rewards)
        let scratch = rows * (2 * c.dim + a.outWidth + a.qkvWidth + 3 * sh.ffn) + seqLen * seqLen
        let parallel = sh.size > 1 ? rows * (c.dim + 3) : 0
        return c.layers * perLayer + once + scratch + parallel
    }

    /// Floats this instance holds (what `floatCount` predicts).
    public var allocatedFloats: Int {
        let perLayer = [residual, residualMid, norm1, rstd1, qkv, probs, attnOut, norm2, rstd2, h13, gated].joined()
        let single = [finalNorm, finalRstd, logits, dResidual, dNorm, dAttn, dQKV, dH13, dGated, dScores, partial, rowStats]
        return (Array(perLayer) + single).reduce(0) { $0 + $1.count }
    }

    /// Activations of one tensor-parallel rank's piece (the whole model by default).
    public init(config c: LlamaConfig, shard: TensorShard? = nil, batch: Int, seqLen: Int) {
        precondition(seqLen <= c.maxSeqLen, "sequence length \(seqLen) exceeds the model's \(c.maxSeqLen)")
        let sh = shard ?? .whole(c)
        self.batch = batch
        self.seqLen = seqLen
        let rows = batch * seqLen
        attention = AttentionShape(batch: batch, seqLen: seqLen, heads: sh.heads,
                                   kvHeads: sh.kvHeads, headDim: c.headDim)
        func each(_ n: Int, _ count: Int) -> [FloatBuffer] { (0..<n).map { _ in FloatBuffer(count: count) } }
        let L = c.layers
        residual = each(L + 1, rows * c.dim)
        residualMid = each(L, rows * c.dim)
        norm1 = each(L, rows * c.dim); rstd1 = each(L, rows)
        qkv = each(L, rows * attention.qkvWidth)
        probs = each(L, attention.probsCount)
        attnOut = each(L, rows * attention.outWidth)
        norm2 = each(L, rows * c.dim); rstd2 = each(L, rows)
        h13 = each(L, rows * 2 * sh.ffn)
        gated = each(L, rows * sh.ffn)
        finalNorm = FloatBuffer(count: rows * c.dim)
        finalRstd = FloatBuffer(count: rows)
        logits = FloatBuffer(count: rows * (c.scalarHead ? 1 : sh.vocab))
        dResidual = FloatBuffer(count: rows * c.dim)
        dNorm = FloatBuffer(count: rows * c.dim)
        dAttn = FloatBuffer(count: rows * attention.outWidth)
        dQKV = FloatBuffer(count: rows * attention.qkvWidth)
        dH13 = FloatBuffer(count: rows * 2 * sh.ffn)
        dGated = FloatBuffer(count: rows * sh.ffn)
        dScores = FloatBuffer(count: seqLen * seqLen)
        partial = FloatBuffer(count: sh.size > 1 ? rows * c.dim : 0)
        rowStats = FloatBuffer(count: sh.size > 1 ? 3 * rows : 0)
    }
}
