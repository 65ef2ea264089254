import Foundation

/// Causal self-attention with grouped-query heads, on the fused projection
/// buffer qkv[rows, ld] whose row holds Q (nHeads·headDim), then K and V
/// (nKVHeads·headDim each). Query head h reads KV head h / (nHeads/nKVHeads).
/// The head counts are those of this rank: with tensor parallelism each rank
/// holds a contiguous block of query heads and the KV heads they read.
public struct AttentionShape: Sendable, Equatable {
    public var batch: Int
    public var seqLen: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int

    public init(batch: Int, seqLen: Int, heads: Int, kvHeads: Int, headDim: Int) {
        precondition(kvHeads > 0 && heads % kvHeads == 0, "heads must be a multiple of KV heads")
        self.batch = batch; self.seqLen = seqLen; self.heads = heads
        self.kvHeads = kvHeads; self.headDim = headDim
    }

    public var qkvWidth: Int { (heads + 2 * kvHeads) * headDim }
    public var outWidth: Int { heads * headDim }
    public var probsCount: Int { batch * heads * seqLen * seqLen }
    var kOffset: Int { heads * headDim }
    var vOffset: Int { (heads + kvHeads) * headDim }
    var scale: Float { 1 / Float(headDim).squareRoot() }
}

public enum Attention {
    /// out[rows, heads·headDim] = softmax(mask(Q·Kᵀ/√d))·V; keeps the
    /// probabilities [batch, heads, T, T] for the backward pass.
    /// `segmentStarts[row]`, when given, is where the row's segment begins
    /// within its sequence: the row attends to positions start...i only (packed
    /// examples that never see each other). The backward pass needs no
    /// change: a masked probability is 0, and so is its gradient.
    public static func forward(
        out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
        qkv: UnsafePointer<Float>, shape s: AttentionShape, segmentStarts: UnsafePointer<Int32>? = nil
    ) {
        let T = s.seqLen, hd = s.headDim, ld = s.qkvWidth, group = s.heads / s.kvHeads
        for b in 0..<s.batch {
            let rowBase = qkv + b * T * ld
            for h in 0..<s.heads {
                let q = rowBase + h * hd
                let k = rowBase + s.kOffset + (h / group) * hd
                let v = rowBase + s.vOffset + (h / group) * hd
                let p = probs + (b * s.heads + h) * T * T
                Matmul.gemm(transA: false, transB: true, m: T, n: T, k: hd, alpha: s.scale,
                            a: q, lda: ld, b: k, ldb: ld, c: p, ldc: T)
                causalSoftmax(p, T: T, starts: segmentStarts.map { $0 + b * T })
                Matmul.gemm(transA: false, transB: false, m: T, n: hd, k: T,
                            a: p, lda: T, b: v, ldb: ld,
                            c: out + b * T * s.outWidth + h * hd, ldc: s.outWidth)
            }
        }
    }

    /// Row i keeps columns start(i)...i, softmaxed (start 0 without
    /// segments); the other columns become 0.
    @inline(__always)
    static func causalSoftmax(_ p: UnsafeMutablePointer<Float>, T: Int, starts: UnsafePointer<Int32>? = nil) {
        for i in 0..<T {
            let row = p + i * T
            let a = starts.map { Int($0[i]) } ?? 0
            let kept = row + a, n = i + 1 - a
            let m = FastMath.max(kept, count: n)
            let sum = FastMath.expShiftedSum(kept, count: n, shift: m)
            let inv = 1 / sum
            for j in 0..<n { kept[j] *= inv }
            row.update(repeating: 0, count: a)
            (row + i + 1).update(repeating: 0, count: T - i - 1)
        }
    }

    /// Given dOut, writes dqkv (overwriting all of it). `scratch` holds T·T floats.
    /// dV = Pᵀ·dO; dP = dO·Vᵀ; dS = P ⊙ (dP − rowsum(dP ⊙ P)); dQ = dS·K/√d; dK = dSᵀ·Q/√d.
    public static func backward(
        dqkv: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
        qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
        scratch: UnsafeMutablePointer<Float>, shape s: AttentionShape
    ) {
        let T = s.seqLen, hd = s.headDim, ld = s.qkvWidth, group = s.heads / s.kvHeads
        for b in 0..<s.batch {
            let rowBase = qkv + b * T * ld
            let dRowBase = dqkv + b * T * ld
            // K and V gradients accumulate over the query heads of a group.
            for r in 0..<T {
                (dRowBase + r * ld + s.kOffset).update(repeating: 0, count: 2 * s.kvHeads * hd)
            }
            for h in 0..<s.heads {
                let kv = (h / group) * hd
                let q = rowBase + h * hd, k = rowBase + s.kOffset + kv, v = rowBase + s.vOffset + kv
                let dq = dRowBase + h * hd, dk = dRowBase + s.kOffset + kv, dv = dRowBase + s.vOffset + kv
                let p = probs + (b * s.heads + h) * T * T
                let dO = dOut + b * T * s.outWidth + h * hd
                Matmul.gemm(transA: true, transB: false, m: T, n: hd, k: T,
                            a: p, lda: T, b: dO, ldb: s.outWidth, beta: 1, c: dv, ldc: ld)
                Matmul.gemm(transA: false, transB: true, m: T, n: T, k: hd,
                            a: dO, lda: s.outWidth, b: v, ldb: ld, c: scratch, ldc: T)
                for i in 0..<T {
                    let pr = p + i * T, dr = scratch + i * T
                    let dot = FastMath.dot(pr, dr, count: i + 1)
                    for j in 0...i { dr[j] = pr[j] * (dr[j] - dot) }
                    (dr + i + 1).update(repeating: 0, count: T - i - 1)
                }
                Matmul.gemm(transA: false, transB: false, m: T, n: hd, k: T, alpha: s.scale,
                            a: scratch, lda: T, b: k, ldb: ld, c: dq, ldc: ld)
                Matmul.gemm(transA: true, transB: false, m: T, n: hd, k: T, alpha: s.scale,
                            a: scratch, lda: T, b: q, ldb: ld, beta: 1, c: dk, ldc: ld)
            }
        }
    }
}
