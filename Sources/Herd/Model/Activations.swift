/// What the forward pass keeps for the backward pass, for one micro-batch of
/// `batch` sequences of `seqLen` tokens. Allocated once and reused each step.
public final class Activations {
    public let batch: Int
    public let seqLen: Int
    public var rows: Int { batch * seqLen }
    let attention: AttentionShape

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
    let logits: FloatBuffer         // [rows, vocab]; becomes dLogits in backward

    // Backward scratch, shared by all layers.
    let dResidual: FloatBuffer, dNorm: FloatBuffer, dAttn: FloatBuffer
    let dQKV: FloatBuffer, dH13: FloatBuffer, dGated: FloatBuffer, dScores: FloatBuffer

    public init(config c: LlamaConfig, batch: Int, seqLen: Int) {
        precondition(seqLen <= c.maxSeqLen, "sequence length \(seqLen) exceeds the model's \(c.maxSeqLen)")
        self.batch = batch
        self.seqLen = seqLen
        let rows = batch * seqLen
        attention = AttentionShape(batch: batch, seqLen: seqLen, heads: c.heads,
                                   kvHeads: c.kvHeads, headDim: c.headDim)
        func each(_ n: Int, _ count: Int) -> [FloatBuffer] { (0..<n).map { _ in FloatBuffer(count: count) } }
        let L = c.layers
        residual = each(L + 1, rows * c.dim)
        residualMid = each(L, rows * c.dim)
        norm1 = each(L, rows * c.dim); rstd1 = each(L, rows)
        qkv = each(L, rows * attention.qkvWidth)
        probs = each(L, attention.probsCount)
        attnOut = each(L, rows * attention.outWidth)
        norm2 = each(L, rows * c.dim); rstd2 = each(L, rows)
        h13 = each(L, rows * 2 * c.ffnDim)
        gated = each(L, rows * c.ffnDim)
        finalNorm = FloatBuffer(count: rows * c.dim)
        finalRstd = FloatBuffer(count: rows)
        logits = FloatBuffer(count: rows * c.vocabSize)
        dResidual = FloatBuffer(count: rows * c.dim)
        dNorm = FloatBuffer(count: rows * c.dim)
        dAttn = FloatBuffer(count: rows * attention.outWidth)
        dQKV = FloatBuffer(count: rows * attention.qkvWidth)
        dH13 = FloatBuffer(count: rows * 2 * c.ffnDim)
        dGated = FloatBuffer(count: rows * c.ffnDim)
        dScores = FloatBuffer(count: seqLen * seqLen)
    }
}
