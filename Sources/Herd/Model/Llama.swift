import Foundation

/// The Llama 2 decoder: token embedding, `layers` blocks of
/// (RMSNorm → causal GQA attention with rotary embeddings → residual,
///  RMSNorm → SwiGLU feed-forward → residual), a final RMSNorm and an untied
/// output layer. Parameters and gradients are each one flat buffer laid out
/// by `ParameterLayout`.
public final class Llama {
    public let config: LlamaConfig
    public let layout: ParameterLayout
    public let params: FloatBuffer
    public let grads: FloatBuffer
    let rope: RotaryTable

    public init(config: LlamaConfig) throws(ConfigError) {
        try config.validate()
        self.config = config
        layout = ParameterLayout(config: config)
        params = FloatBuffer(count: layout.total)
        grads = FloatBuffer(count: layout.total)
        rope = RotaryTable(headDim: config.headDim, maxSeq: config.maxSeqLen, theta: config.ropeTheta)
    }

    /// Normal(0, std) for matrices, with the two projections that write into
    /// the residual stream (wo, w2) scaled by 1/√(2·layers) as in GPT-2 and
    /// torchtitan; RMSNorm gains start at 1.
    public func initialize(seed: UInt64, std: Double = 0.02) {
        var rng = SplitMix64(seed: seed)
        let residualScale = 1 / (2 * Double(config.layers)).squareRoot()
        for spec in layout.specs {
            let p = params.base + spec.offset
            if spec.shape.count == 1 {
                p.update(repeating: 1, count: spec.count)
                continue
            }
            let isResidualProjection = spec.name.hasSuffix("wo.weight") || spec.name.hasSuffix("w2.weight")
            let s = isResidualProjection ? std * residualScale : std
            for i in 0..<spec.count { p[i] = Float(rng.nextNormal() * s) }
        }
    }

    public func zeroGradients() { grads.zero() }

    // MARK: forward

    /// Runs the model on tokens[batch·seqLen] and leaves logits in `acts`.
    public func forwardLogits(tokens: UnsafePointer<TokenID>, acts: Activations) {
        let c = config, rows = acts.rows, s = acts.attention
        let P = params.base
        Embedding.forward(out: acts.residual[0].base, tokens: tokens, table: P + layout.embedding,
                          count: rows, dim: c.dim)
        for l in 0..<c.layers {
            let o = layout.layers[l]
            let x = acts.residual[l].base, mid = acts.residualMid[l].base, next = acts.residual[l + 1].base
            // Attention block. wq, wk, wv are adjacent: one product gives Q|K|V.
            RMSNorm.forward(y: acts.norm1[l].base, rstd: acts.rstd1[l].base, x: x, gain: P + o.attentionNorm,
                            rows: rows, dim: c.dim, eps: c.normEps)
            let qkv = acts.qkv[l].base
            Matmul.linearForward(y: qkv, x: acts.norm1[l].base, w: P + o.wq,
                                 rows: rows, inFeatures: c.dim, outFeatures: s.qkvWidth)
            Rotary.apply(qkv, table: rope, rows: rows, seqLen: acts.seqLen, heads: s.heads + s.kvHeads, ld: s.qkvWidth)
            Attention.forward(out: acts.attnOut[l].base, probs: acts.probs[l].base, qkv: qkv, shape: s)
            mid.update(from: x, count: rows * c.dim)
            Matmul.linearForward(y: mid, x: acts.attnOut[l].base, w: P + o.wo,
                                 rows: rows, inFeatures: s.outWidth, outFeatures: c.dim, accumulate: true)
            // Feed-forward block. w1 and w3 are adjacent: one product gives h1|h3.
            RMSNorm.forward(y: acts.norm2[l].base, rstd: acts.rstd2[l].base, x: mid, gain: P + o.ffnNorm,
                            rows: rows, dim: c.dim, eps: c.normEps)
            Matmul.linearForward(y: acts.h13[l].base, x: acts.norm2[l].base, w: P + o.w1,
                                 rows: rows, inFeatures: c.dim, outFeatures: 2 * c.ffnDim)
            SwiGLU.forward(g: acts.gated[l].base, h: acts.h13[l].base, rows: rows, hidden: c.ffnDim)
            next.update(from: mid, count: rows * c.dim)
            Matmul.linearForward(y: next, x: acts.gated[l].base, w: P + o.w2,
                                 rows: rows, inFeatures: c.ffnDim, outFeatures: c.dim, accumulate: true)
        }
        RMSNorm.forward(y: acts.finalNorm.base, rstd: acts.finalRstd.base, x: acts.residual[c.layers].base,
                        gain: P + layout.finalNorm, rows: rows, dim: c.dim, eps: c.normEps)
        Matmul.linearForward(y: acts.logits.base, x: acts.finalNorm.base, w: P + layout.output,
                             rows: rows, inFeatures: c.dim, outFeatures: c.vocabSize)
    }

    /// Forward only: the summed cross-entropy and the number of targets counted.
    public func loss(tokens: UnsafePointer<TokenID>, targets: UnsafePointer<TokenID>,
                     acts: Activations) -> (lossSum: Double, counted: Int) {
        forwardLogits(tokens: tokens, acts: acts)
        return CrossEntropy.forward(logits: acts.logits.base, targets: targets,
                                    rows: acts.rows, vocab: config.vocabSize)
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
        forwardLogits(tokens: tokens, acts: acts)
        let result = CrossEntropy.forwardBackward(logits: acts.logits.base, targets: targets,
                                                  rows: acts.rows, vocab: config.vocabSize, scale: lossScale)
        backward(tokens: tokens, acts: acts, grads: grads ?? self.grads)
        return result
    }

    /// Backward from dLogits (held in acts.logits) to every parameter gradient.
    func backward(tokens: UnsafePointer<TokenID>, acts: Activations, grads: FloatBuffer) {
        let c = config, rows = acts.rows, s = acts.attention
        let P = params.base, G = grads.base
        let dx = acts.dResidual.base, dn = acts.dNorm.base
        Matmul.linearBackward(dx: dn, dw: G + layout.output, dy: acts.logits.base, x: acts.finalNorm.base,
                              w: P + layout.output, rows: rows, inFeatures: c.dim, outFeatures: c.vocabSize)
        dx.update(repeating: 0, count: rows * c.dim)
        RMSNorm.backward(dx: dx, dGain: G + layout.finalNorm, dy: dn, x: acts.residual[c.layers].base,
                         gain: P + layout.finalNorm, rstd: acts.finalRstd.base, rows: rows, dim: c.dim)
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let o = layout.layers[l]
            // dx is the gradient of the stream leaving the block; the residual
            // passes it through unchanged, and each branch adds its part.
            Matmul.linearBackward(dx: acts.dGated.base, dw: G + o.w2, dy: dx, x: acts.gated[l].base,
                                  w: P + o.w2, rows: rows, inFeatures: c.ffnDim, outFeatures: c.dim)
            SwiGLU.backward(dh: acts.dH13.base, dg: acts.dGated.base, h: acts.h13[l].base,
                            rows: rows, hidden: c.ffnDim)
            Matmul.linearBackward(dx: dn, dw: G + o.w1, dy: acts.dH13.base, x: acts.norm2[l].base,
                                  w: P + o.w1, rows: rows, inFeatures: c.dim, outFeatures: 2 * c.ffnDim)
            RMSNorm.backward(dx: dx, dGain: G + o.ffnNorm, dy: dn, x: acts.residualMid[l].base,
                             gain: P + o.ffnNorm, rstd: acts.rstd2[l].base, rows: rows, dim: c.dim)
            // Attention block.
            Matmul.linearBackward(dx: acts.dAttn.base, dw: G + o.wo, dy: dx, x: acts.attnOut[l].base,
                                  w: P + o.wo, rows: rows, inFeatures: s.outWidth, outFeatures: c.dim)
            Attention.backward(dqkv: acts.dQKV.base, dOut: acts.dAttn.base, qkv: acts.qkv[l].base,
                               probs: acts.probs[l].base, scratch: acts.dScores.base, shape: s)
            Rotary.apply(acts.dQKV.base, table: rope, rows: rows, seqLen: acts.seqLen,
                         heads: s.heads + s.kvHeads, ld: s.qkvWidth, inverse: true)
            Matmul.linearBackward(dx: dn, dw: G + o.wq, dy: acts.dQKV.base, x: acts.norm1[l].base,
                                  w: P + o.wq, rows: rows, inFeatures: c.dim, outFeatures: s.qkvWidth)
            RMSNorm.backward(dx: dx, dGain: G + o.attentionNorm, dy: dn, x: acts.residual[l].base,
                             gain: P + o.attentionNorm, rstd: acts.rstd1[l].base, rows: rows, dim: c.dim)
        }
        Embedding.backward(dTable: G + layout.embedding, dOut: dx, tokens: tokens, count: rows, dim: c.dim)
    }
}
