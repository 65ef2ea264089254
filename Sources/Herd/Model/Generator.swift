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

/// Tokens generated and the seconds it took, over any number of
/// generations: what a sampling stage reports of its speed.
public final class GenerationMeter: @unchecked Sendable {
    private let lock = NSLock()
    private var tokens = 0, seconds = 0.0
    public init() {}

    func add(tokens n: Int, seconds s: Double) {
        lock.lock(); tokens += n; seconds += s; lock.unlock()
    }

    public var totals: (tokens: Int, seconds: Double) { lock.lock(); defer { lock.unlock() }; return (tokens, seconds) }
    public var tokensPerSecond: Double { let t = totals; return t.seconds > 0 ? Double(t.tokens) / t.seconds : 0 }
    /// "N tokens generated in S s (X tokens/s)".
    public var summary: String {
        let t = totals
        return String(format: "%d tokens generated in %.1f s (%.0f tokens/s)", t.tokens, t.seconds, tokensPerSecond)
    }
}

/// Batched generation with a KV cache that keeps its batch full.
///
/// - **Slots.** `batch` sequences advance together, one position per step,
///   their projections in one matrix product. When a sequence ends, its
///   slot takes the next prompt (continuous batching), so a long answer
///   does not leave the rest of the batch idle.
/// - **Prefill as products.** A prompt enters its slot as rows of the same
///   step as the other slots' next tokens: all of its positions but the
///   last go through each product at once (at most `prefillRows` a step).
/// - **Shared prompts.** Samples of one prompt (rejection sampling's K)
///   prefill it once: the others copy its keys and values.
/// - **Tensor parallelism.** When the model is one rank's shard, the cache
///   and the heads are split across the tensor group as in training: the
///   embedding and the row-parallel products are all-reduced, and the
///   vocabulary's blocks of logits all-gathered, so every rank of the group
///   samples the same token from the same numbers and they advance in step.
///
/// Sequence b draws from its own stream, so its answer does not depend on
/// its slot, its companions or the tensor degree (up to the last bits of
/// the sums, which move a sample only at a near tie).
public final class Generator {
    public let model: Llama
    public let batch: Int
    public let maxLen: Int
    /// Prompt rows a step takes beside the slots' next tokens.
    public let prefillRows: Int
    /// Per layer [slot, kvHeads, maxLen, headDim] of this rank's KV heads:
    /// one head's keys (and values) over all positions are contiguous, so
    /// attending streams them.
    let kCache: [FloatBuffer], vCache: [FloatBuffer]
    let x: FloatBuffer, xn: FloatBuffer, rstd: FloatBuffer, qkv: FloatBuffer, att: FloatBuffer
    let h13: FloatBuffer, g: FloatBuffer, partial: FloatBuffer
    /// The rows that sample: their final norms, this rank's logits, every
    /// rank's (gathered), and the whole vocabulary's in row order.
    let last: FloatBuffer, localLogits: FloatBuffer, gathered: FloatBuffer, logits: FloatBuffer
    /// Attention scores, `maxLen` floats per thread.
    let scores: FloatBuffer
    /// Threads that split the step's attention over the cache by rows, and
    /// each product over the whole step by output features (so the weights
    /// are read once per step, not once per thread); the decode kernels use
    /// at most the process's `Matmul.threads` of them.
    public let threads: Int
    /// Called after every step (a worker's heartbeat: generation is progress).
    public var onStep: (() -> Void)?
    /// Told of every generation's tokens and time.
    public var meter: GenerationMeter?
    /// On a tensor group led by this rank: the leader that tells the other ranks to run the same generation.
    var leader: (TensorGroupLeader, model: Int)?
    let heads: Int, kvHeads: Int, qkvWidth: Int, ffn: Int, vocab: Int

    public init(model: Llama, batch: Int, maxLen: Int? = nil, prefillRows: Int = 256,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        let c = model.config, s = model.shard, hd = c.headDim
        self.model = model
        self.batch = batch
        let len = min(maxLen ?? c.maxSeqLen, c.maxSeqLen)
        self.maxLen = len
        self.prefillRows = max(1, prefillRows)
        heads = s.heads; kvHeads = s.kvHeads; ffn = s.ffn; vocab = s.vocab
        qkvWidth = (heads + 2 * kvHeads) * hd
        let kv = kvHeads * hd, rows = batch + self.prefillRows
        kCache = (0..<c.layers).map { _ in FloatBuffer(count: batch * len * kv) }
        vCache = (0..<c.layers).map { _ in FloatBuffer(count: batch * len * kv) }
        x = FloatBuffer(count: rows * c.dim); xn = FloatBuffer(count: rows * c.dim); rstd = FloatBuffer(count: rows)
        qkv = FloatBuffer(count: rows * qkvWidth); att = FloatBuffer(count: rows * heads * hd)
        h13 = FloatBuffer(count: rows * 2 * ffn); g = FloatBuffer(count: rows * ffn)
        partial = FloatBuffer(count: s.size > 1 ? rows * c.dim : 0)
        last = FloatBuffer(count: batch * c.dim); localLogits = FloatBuffer(count: batch * s.vocab)
        gathered = FloatBuffer(count: s.size > 1 ? batch * c.vocabSize : 0)
        logits = FloatBuffer(count: batch * c.vocabSize)
        self.threads = max(1, threads)
        scores = FloatBuffer(count: self.threads * len)
    }

    /// One position of one slot in a step.
    struct Row { var slot: Int, position: Int, token: TokenID }

    /// What a slot is doing: filling its prompt's cache (or waiting to copy
    /// another slot's), then decoding.
    struct Slot {
        var sequence: Int
        var prompt: [TokenID]
        /// Prompt positions whose keys and values are in the cache; decoding
        /// starts when all but the last are.
        var filled = 0
        var copyFrom: Int?
        var position = 0
        var token: TokenID = 0
        var decoding = false
        var toFill: Int { prompt.count - 1 }
    }

    /// Continues each prompt (any number; each non-empty); returns the new
    /// tokens of each, EOS included when it was sampled. Sequence b draws
    /// from stream `seeds[b]` when given, else (options.seed, b).
    public func generate(_ prompts: [[TokenID]], options o: SamplingOptions, seeds: [UInt64]? = nil) -> [[TokenID]] {
        precondition(prompts.allSatisfy { !$0.isEmpty })
        precondition(seeds == nil || seeds!.count == prompts.count)
        leader?.0.announce(model: leader!.model, batch: batch, maxLen: maxLen, prompts: prompts, options: o, seeds: seeds)
        var rngs = prompts.indices.map { SplitMix64(seed: seeds?[$0] ?? SplitMix64.mix(o.seed, UInt64($0))) }
        var out = [[TokenID]](repeating: [], count: prompts.count)
        let started = DispatchTime.now().uptimeNanoseconds
        defer { meter?.add(tokens: out.reduce(0) { $0 + $1.count }, seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9) }
        var slots = [Slot?](repeating: nil, count: batch)
        // A prompt of maxLen − 1 tokens or more leaves no position to sample at.
        var queue = prompts.indices.filter { prompts[$0].count < maxLen && o.maxNewTokens > 0 }.makeIterator()
        var pending = true
        while true {
            if pending { pending = admit(&slots, &queue, prompts) }
            var rows: [Row] = []
            for (i, s) in slots.enumerated() { if let s, s.decoding { rows.append(Row(slot: i, position: s.position, token: s.token)) } }
            let decoding = rows.count
            var budget = prefillRows
            for (i, s) in slots.enumerated() where budget > 0 {
                guard let s, !s.decoding, s.copyFrom == nil else { continue }
                let n = min(budget, s.toFill - s.filled)
                for p in s.filled..<(s.filled + n) { rows.append(Row(slot: i, position: p, token: s.prompt[p])) }
                slots[i]!.filled += n
                budget -= n
            }
            if rows.isEmpty { break }
            step(rows, sampling: decoding)
            onStep?()
            for i in slots.indices where slots[i].map({ !$0.decoding && $0.copyFrom == nil && $0.filled == $0.toFill }) ?? false {
                startDecoding(&slots[i]!)
                for j in slots.indices where slots[j]?.copyFrom == i {
                    copyPrompt(from: i, to: j, count: slots[i]!.toFill)
                    slots[j]!.copyFrom = nil
                    startDecoding(&slots[j]!)
                }
            }
            for (r, row) in rows.prefix(decoding).enumerated() {
                let b = slots[row.slot]!.sequence
                let next = sample(logits.base + r * model.config.vocabSize, options: o, rng: &rngs[b])
                out[b].append(next)
                if next == o.eos || out[b].count >= o.maxNewTokens || row.position + 1 >= maxLen - 1 {
                    slots[row.slot] = nil
                } else {
                    slots[row.slot]!.position += 1
                    slots[row.slot]!.token = next
                }
            }
        }
        return out
    }

    /// Gives free slots the next prompts; a prompt another slot holds is
    /// copied from it rather than prefilled. Returns whether prompts remain.
    private func admit(_ slots: inout [Slot?], _ queue: inout IndexingIterator<[Int]>, _ prompts: [[TokenID]]) -> Bool {
        for i in slots.indices where slots[i] == nil {
            guard let b = queue.next() else { return false }
            var s = Slot(sequence: b, prompt: prompts[b])
            if s.toFill > 0, let j = slots.indices.first(where: { slots[$0].map { $0.copyFrom == nil && $0.prompt == s.prompt } ?? false }) {
                if slots[j]!.decoding || slots[j]!.filled == s.toFill {
                    copyPrompt(from: j, to: i, count: s.toFill)
                    startDecoding(&s)
                } else {
                    s.copyFrom = j
                }
            } else if s.toFill == 0 {
                startDecoding(&s)
            }
            slots[i] = s
        }
        return true
    }

    private func startDecoding(_ s: inout Slot) {
        s.filled = s.toFill
        s.decoding = true
        s.position = s.toFill
        s.token = s.prompt[s.toFill]
    }

    /// The keys and values of positions 0..<count of slot `a` into slot `b`.
    private func copyPrompt(from a: Int, to b: Int, count: Int) {
        let hd = model.config.headDim
        for l in 0..<model.config.layers {
            for cache in [kCache[l], vCache[l]] {
                for h in 0..<kvHeads {
                    (cache.base + ((b * kvHeads + h) * maxLen) * hd).update(from: cache.base + ((a * kvHeads + h) * maxLen) * hd, count: count * hd)
                }
            }
        }
    }

    /// Next-token logits after each prefix of one sequence, through the cache.
    public func logits(for sequence: [TokenID]) -> [[Float]] {
        let V = model.config.vocabSize
        return sequence.enumerated().map { t, token in
            step([Row(slot: 0, position: t, token: token)], sampling: 1)
            return Array(UnsafeBufferPointer(start: logits.base, count: V))
        }
    }

    /// Runs `rows` through the model: writes their keys and values into the
    /// cache, and leaves next-token logits of the first `sampling` rows in
    /// `logits` (prompt rows only fill the cache).
    func step(_ rows: [Row], sampling: Int) {
        let c = model.config, P = model.params.base, L = model.layout, tp = model.tp
        let n = rows.count, d = c.dim, F = ffn, hd = c.headDim
        let x = self.x.base, xn = self.xn.base, rstd = self.rstd.base, qkv = self.qkv.base, att = self.att.base
        rows.map(\.token).withUnsafeBufferPointer {
            Embedding.forward(out: x, tokens: $0.baseAddress!, table: P + L.embedding, count: n, dim: d,
                              vocabStart: model.shard.vocabStart, vocab: vocab)
        }
        if tp.size > 1 { tp.allReduce(x, count: n * d, op: .sum) }
        // Where each row's cache starts and how far it reaches: the same for every layer.
        let cacheRows = DecodeKernels.attends(headDim: hd)
            ? (offsets: rows.map { $0.slot * kvHeads * maxLen * hd }, positions: rows.map { Int32($0.position) }) : nil
        for l in 0..<c.layers {
            let o = L.layers[l]
            RMSNorm.forward(y: xn, rstd: rstd, x: x, gain: P + o.attentionNorm, rows: n, dim: d, eps: c.normEps)
            DecodeKernels.linear(y: qkv, x: xn, w: P + o.wq, rows: n, inFeatures: d, outFeatures: qkvWidth, threads: threads)
            for (r, row) in rows.enumerated() {
                Rotary.apply(qkv + r * qkvWidth, table: model.rope, rows: 1, seqLen: 1, heads: heads + kvHeads, ld: qkvWidth,
                             startPosition: row.position)
                store(layer: l, row: row, from: qkv + r * qkvWidth)
            }
            attend(layer: l, rows: rows, cacheRows: cacheRows)
            rowParallel(x, input: att, weight: P + o.wo, rows: n, inFeatures: heads * hd)
            RMSNorm.forward(y: xn, rstd: rstd, x: x, gain: P + o.ffnNorm, rows: n, dim: d, eps: c.normEps)
            DecodeKernels.linear(y: h13.base, x: xn, w: P + o.w1, rows: n, inFeatures: d, outFeatures: 2 * F, threads: threads)
            SwiGLU.forward(g: g.base, h: h13.base, rows: n, hidden: F)
            rowParallel(x, input: g.base, weight: P + o.w2, rows: n, inFeatures: F)
        }
        guard sampling > 0 else { return }
        RMSNorm.forward(y: last.base, rstd: rstd, x: x, gain: P + L.finalNorm, rows: sampling, dim: d, eps: c.normEps)
        let V = c.vocabSize
        if tp.size == 1 {
            DecodeKernels.linear(y: logits.base, x: last.base, w: P + L.output, rows: sampling, inFeatures: d, outFeatures: V, threads: threads)
            return
        }
        // Each rank's block of the vocabulary, gathered rank after rank, then laid out row after row.
        DecodeKernels.linear(y: localLogits.base, x: last.base, w: P + L.output, rows: sampling, inFeatures: d, outFeatures: vocab, threads: threads)
        tp.allGather(send: localLogits.base, receive: gathered.base, countPerRank: sampling * vocab)
        for k in 0..<tp.size {
            for r in 0..<sampling {
                (logits.base + r * V + k * vocab).update(from: gathered.base + (k * sampling + r) * vocab, count: vocab)
            }
        }
    }

    /// stream += input·Wᵀ for a row-parallel W: a partial sum on each tensor rank, all-reduced first.
    private func rowParallel(_ stream: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                             rows n: Int, inFeatures: Int) {
        let d = model.config.dim
        guard model.tp.size > 1 else {
            DecodeKernels.linear(y: stream, x: input, w: weight, rows: n, inFeatures: inFeatures, outFeatures: d, accumulate: true, threads: threads)
            return
        }
        DecodeKernels.linear(y: partial.base, x: input, w: weight, rows: n, inFeatures: inFeatures, outFeatures: d, threads: threads)
        model.tp.allReduce(partial.base, count: n * d, op: .sum)
        for i in 0..<(n * d) { stream[i] += partial.base[i] }
    }

    /// A row's keys and values into its slot's cache at its position.
    private func store(layer l: Int, row: Row, from q: UnsafePointer<Float>) {
        let hd = model.config.headDim, kv = kvHeads * hd, k = heads * hd
        for h in 0..<kvHeads {
            let at = ((row.slot * kvHeads + h) * maxLen + row.position) * hd
            (kCache[l].base + at).update(from: q + k + h * hd, count: hd)
            (vCache[l].base + at).update(from: q + k + kv + h * hd, count: hd)
        }
    }

    /// Each row attends over its slot's cache up to its position: the
    /// decode kernel, or the Swift loop below split over `threads`.
    /// `cacheRows` (each row's cache offset and position) when the kernel takes this model's heads.
    func attend(layer l: Int, rows: [Row], cacheRows: (offsets: [Int], positions: [Int32])?) {
        let n = rows.count, hd = model.config.headDim
        if let cacheRows {
            DecodeKernels.attend(out: att.base, outStride: heads * hd, q: qkv.base, qStride: qkvWidth,
                                 keys: kCache[l].base, values: vCache[l].base,
                                 cacheOffsets: cacheRows.offsets, positions: cacheRows.positions,
                                 heads: heads, kvHeads: kvHeads, headDim: hd, headStride: maxLen * hd,
                                 scores: scores.base, maxLen: maxLen, threads: threads)
            return
        }
        let parts = min(threads, n), chunk = (n + parts - 1) / parts
        if parts == 1 { return attend(layer: l, rows: rows, 0..<n, scores: scores.base) }
        DispatchQueue.concurrentPerform(iterations: parts) { i in
            let lo = i * chunk, hi = min(n, lo + chunk)
            if lo < hi { attend(layer: l, rows: rows, lo..<hi, scores: scores.base + i * maxLen) }
        }
    }

    func attend(layer l: Int, rows: [Row], _ range: Range<Int>, scores s: UnsafeMutablePointer<Float>) {
        let hd = model.config.headDim, group = heads / kvHeads, scale = 1 / Float(hd).squareRoot()
        let K = kCache[l].base, V = vCache[l].base
        for r in range {
            let row = rows[r], t = row.position, q0 = qkv.base + r * qkvWidth
            for h in 0..<heads {
                let q = q0 + h * hd, base = (row.slot * kvHeads + h / group) * maxLen * hd
                let keys = K + base, values = V + base
                var j = 0
                while j + 4 <= t + 1 {
                    let d = FastMath.dot4(q, keys + j * hd, stride: hd, count: hd)
                    s[j] = d[0] * scale; s[j + 1] = d[1] * scale; s[j + 2] = d[2] * scale; s[j + 3] = d[3] * scale
                    j += 4
                }
                while j <= t { s[j] = FastMath.dot(q, keys + j * hd, count: hd) * scale; j += 1 }
                let m = FastMath.max(s, count: t + 1)
                let inv = 1 / FastMath.expShiftedSum(s, count: t + 1, shift: m)
                Self.weightedSum(into: att.base + r * heads * hd + h * hd, values: values, weights: s, scale: inv,
                                 count: t + 1, width: hd)
            }
        }
    }

    /// dst[e] = Σ_j (w[j]·scale)·v[j][e], j in order: each element sums
    /// the same terms in the same order as a plain loop (so the same bits),
    /// sixteen elements at a time in registers rather than through memory.
    @inline(__always)
    static func weightedSum(into dst: UnsafeMutablePointer<Float>, values v: UnsafePointer<Float>, weights w: UnsafePointer<Float>,
                            scale: Float, count: Int, width: Int) {
        var e = 0
        while e + 16 <= width {
            var acc = SIMD16<Float>(repeating: 0)
            for j in 0..<count {
                acc += SIMD16(repeating: w[j] * scale) * UnsafeRawPointer(v + j * width + e).loadUnaligned(as: SIMD16<Float>.self)
            }
            UnsafeMutableRawPointer(dst + e).storeBytes(of: acc, as: SIMD16<Float>.self)
            e += 16
        }
        while e < width {
            var acc: Float = 0
            for j in 0..<count { acc += w[j] * scale * v[j * width + e] }
            dst[e] = acc
            e += 1
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
        guard o.topP < 1 else {
            // The whole vocabulary, in order (no candidate list to build per token).
            var u = rng.nextUnit() * Double(total)
            for j in 0..<V {
                u -= Double(logits[j])
                if u <= 0 { return TokenID(j) }
            }
            return TokenID(V - 1)
        }
        var candidates = Array(0..<V)
        candidates.sort { logits[$0] > logits[$1] }
        var kept = 0, cum = 0.0
        while kept < V && cum < o.topP * Double(total) { cum += Double(logits[candidates[kept]]); kept += 1 }
        candidates = Array(candidates.prefix(max(kept, 1)))
        var u = rng.nextUnit() * cum
        for j in candidates {
            u -= Double(logits[j])
            if u <= 0 { return TokenID(j) }
        }
        return TokenID(candidates.last!)
    }
}
