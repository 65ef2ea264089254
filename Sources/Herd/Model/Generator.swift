import Foundation

/// How to pick each new token.
public struct SamplingOptions: Sendable {
    /// 0 = greedy (argmax).
    public var temperature: Double = 0.8
    /// Nucleus sampling: the smallest set of tokens whose probability reaches topP.
    public var topP: Double = 1.0
    public var seed: UInt64 = 0
    public var maxNewTokens: Int = 128
    /// A sequence stops when it samples this token.
    public var eos: TokenID?
    public init(temperature: Double = 0.8, topP: Double = 1.0, seed: UInt64 = 0, maxNewTokens: Int = 128, eos: TokenID? = nil) {
        self.temperature = temperature; self.topP = topP; self.seed = seed; self.maxNewTokens = maxNewTokens; self.eos = eos
    }
}

/// Batched generation with a KV cache: every sequence of the batch advances
/// one position per step, the projections of all of them in one matrix
/// product (rejection sampling draws K answers for many prompts at once).
/// While a sequence is still inside its prompt its next token is the
/// prompt's; after that it is sampled. One process, the whole model.
public final class Generator {
    public let model: Llama
    public let batch: Int
    public let maxLen: Int
    /// Per layer [batch, kvHeads, maxLen, headDim]: one head's keys (and
    /// values) over all positions are contiguous, so attending streams them.
    let kCache: [FloatBuffer], vCache: [FloatBuffer]
    let x: FloatBuffer, xn: FloatBuffer, rstd: FloatBuffer, qkv: FloatBuffer, att: FloatBuffer
    let h13: FloatBuffer, g: FloatBuffer, logits: FloatBuffer
    /// Attention scores, one row per thread.
    let scores: [FloatBuffer]
    /// Threads that split the batch's attention over the cache (the matrix
    /// products run over the whole batch with OpenBLAS's threads, so the
    /// weights are packed once per step, not once per thread).
    public let threads: Int

    public init(model: Llama, batch: Int, maxLen: Int? = nil, threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        precondition(model.shard.size == 1, "generation runs the whole model in one process")
        let c = model.config
        self.model = model
        self.batch = batch
        let len = min(maxLen ?? c.maxSeqLen, c.maxSeqLen)
        self.maxLen = len
        let kv = c.kvDim
        kCache = (0..<c.layers).map { _ in FloatBuffer(count: batch * len * kv) }
        vCache = (0..<c.layers).map { _ in FloatBuffer(count: batch * len * kv) }
        x = FloatBuffer(count: batch * c.dim); xn = FloatBuffer(count: batch * c.dim); rstd = FloatBuffer(count: batch)
        qkv = FloatBuffer(count: batch * (c.dim + 2 * kv)); att = FloatBuffer(count: batch * c.dim)
        h13 = FloatBuffer(count: batch * 2 * c.ffnDim); g = FloatBuffer(count: batch * c.ffnDim)
        logits = FloatBuffer(count: batch * c.vocabSize)
        self.threads = max(1, min(threads, batch))
        scores = (0..<self.threads).map { _ in FloatBuffer(count: len) }
    }

    /// Continues each prompt (at most `batch` of them, each non-empty);
    /// returns the new tokens of each, EOS included when it was sampled.
    /// Sequence b draws from stream `seeds[b]` when given (so that a sample
    /// does not depend on its place in the batch), else (options.seed, b).
    public func generate(_ prompts: [[TokenID]], options o: SamplingOptions, seeds: [UInt64]? = nil) -> [[TokenID]] {
        precondition(!prompts.isEmpty && prompts.count <= batch && prompts.allSatisfy { !$0.isEmpty })
        precondition(seeds == nil || seeds!.count == prompts.count)
        let n = prompts.count
        var rngs = (0..<n).map { SplitMix64(seed: seeds?[$0] ?? SplitMix64.mix(o.seed, UInt64($0))) }
        var current = prompts.map { $0[0] }
        var out = [[TokenID]](repeating: [], count: n)
        var done = [Bool](repeating: false, count: n)
        var t = 0
        while t < maxLen - 1 && done.contains(false) {
            step(tokens: current, position: t)
            for b in 0..<n where !done[b] {
                if t + 1 < prompts[b].count {
                    current[b] = prompts[b][t + 1]
                    continue
                }
                let next = sample(logits.base + b * model.config.vocabSize, options: o, rng: &rngs[b])
                out[b].append(next)
                current[b] = next
                if next == o.eos || out[b].count >= o.maxNewTokens { done[b] = true }
            }
            t += 1
        }
        return out
    }

    /// Next-token logits after each prefix of one sequence, through the cache.
    public func logits(for sequence: [TokenID]) -> [[Float]] {
        let V = model.config.vocabSize
        return sequence.enumerated().map { t, token in
            step(tokens: [token], position: t)
            return Array(UnsafeBufferPointer(start: logits.base, count: V))
        }
    }

    /// One position for rows 0..<tokens.count: writes K and V at `position`
    /// into the cache and leaves next-token logits in `logits`.
    func step(tokens: [TokenID], position t: Int) {
        let c = model.config, P = model.params.base, L = model.layout
        let rows = tokens.count, d = c.dim, kv = c.kvDim, qkvW = d + 2 * kv, F = c.ffnDim
        let x = self.x.base, xn = self.xn.base, rstd = self.rstd.base, qkv = self.qkv.base, att = self.att.base
        tokens.withUnsafeBufferPointer {
            Embedding.forward(out: x, tokens: $0.baseAddress!, table: P + L.embedding, count: rows, dim: d)
        }
        for l in 0..<c.layers {
            let o = L.layers[l]
            RMSNorm.forward(y: xn, rstd: rstd, x: x, gain: P + o.attentionNorm, rows: rows, dim: d, eps: c.normEps)
            Matmul.linearForward(y: qkv, x: xn, w: P + o.wq, rows: rows, inFeatures: d, outFeatures: qkvW)
            Rotary.apply(qkv, table: model.rope, rows: rows, seqLen: 1, heads: c.heads + c.kvHeads, ld: qkvW, startPosition: t)
            let parts = min(threads, rows), chunk = (rows + parts - 1) / parts
            if parts == 1 {
                attend(layer: l, rows: 0..<rows, position: t, scores: scores[0].base)
            } else {
                DispatchQueue.concurrentPerform(iterations: parts) { i in
                    let lo = i * chunk, hi = min(rows, lo + chunk)
                    if lo < hi { attend(layer: l, rows: lo..<hi, position: t, scores: scores[i].base) }
                }
            }
            Matmul.linearForward(y: x, x: att, w: P + o.wo, rows: rows, inFeatures: d, outFeatures: d, accumulate: true)
            RMSNorm.forward(y: xn, rstd: rstd, x: x, gain: P + o.ffnNorm, rows: rows, dim: d, eps: c.normEps)
            Matmul.linearForward(y: h13.base, x: xn, w: P + o.w1, rows: rows, inFeatures: d, outFeatures: 2 * F)
            SwiGLU.forward(g: g.base, h: h13.base, rows: rows, hidden: F)
            Matmul.linearForward(y: x, x: g.base, w: P + o.w2, rows: rows, inFeatures: F, outFeatures: d, accumulate: true)
        }
        RMSNorm.forward(y: xn, rstd: rstd, x: x, gain: P + L.finalNorm, rows: rows, dim: d, eps: c.normEps)
        Matmul.linearForward(y: logits.base, x: xn, w: P + L.output, rows: rows, inFeatures: d, outFeatures: c.vocabSize)
    }

    /// Stores K and V of `rows` at `position` and attends over their cache.
    func attend(layer l: Int, rows: Range<Int>, position t: Int, scores s: UnsafeMutablePointer<Float>) {
        let c = model.config, d = c.dim, kv = c.kvDim, hd = c.headDim, qkvW = d + 2 * kv
        let group = c.heads / c.kvHeads, scale = 1 / Float(hd).squareRoot()
        let K = kCache[l].base, V = vCache[l].base
        for b in rows {
            let row = qkv.base + b * qkvW
            for kh in 0..<c.kvHeads {
                let at = ((b * c.kvHeads + kh) * maxLen + t) * hd
                (K + at).update(from: row + d + kh * hd, count: hd)
                (V + at).update(from: row + d + kv + kh * hd, count: hd)
            }
            for h in 0..<c.heads {
                let q = row + h * hd, base = (b * c.kvHeads + h / group) * maxLen * hd
                let keys = K + base, values = V + base
                for j in 0...t { s[j] = FastMath.dot(q, keys + j * hd, count: hd) * scale }
                let m = FastMath.max(s, count: t + 1)
                let inv = 1 / FastMath.expShiftedSum(s, count: t + 1, shift: m)
                let dst = att.base + b * d + h * hd
                dst.update(repeating: 0, count: hd)
                for j in 0...t {
                    let p = s[j] * inv, v = values + j * hd
                    for e in 0..<hd { dst[e] += p * v[e] }
                }
            }
        }
    }

    func sample(_ logits: UnsafeMutablePointer<Float>, options o: SamplingOptions, rng: inout SplitMix64) -> TokenID {
        let V = model.config.vocabSize
        if o.temperature <= 0 {
            var best = 0
            for j in 1..<V where logits[j] > logits[best] { best = j }
            return TokenID(best)
        }
        for j in 0..<V { logits[j] = Float(Double(logits[j]) / o.temperature) }
        let m = FastMath.max(logits, count: V)
        let total = FastMath.expShiftedSum(logits, count: V, shift: m)   // logits now hold unnormalised probabilities
        var candidates = Array(0..<V)
        var mass = Double(total)
        if o.topP < 1 {
            candidates.sort { logits[$0] > logits[$1] }
            var kept = 0, cum = 0.0
            while kept < V && cum < o.topP * Double(total) { cum += Double(logits[candidates[kept]]); kept += 1 }
            candidates = Array(candidates.prefix(max(kept, 1)))
            mass = cum
        }
        var u = rng.nextUnit() * mass
        for j in candidates {
            u -= Double(logits[j])
            if u <= 0 { return TokenID(j) }
        }
        return TokenID(candidates.last!)
    }
}
