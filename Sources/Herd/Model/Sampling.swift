import Foundation

extension Llama {
    /// Samples `count` tokens after `prompt` at `temperature` (0 = greedy)
    /// with a sliding window: each new token reruns the model over the last
    /// `acts.seqLen` tokens, so a sample can be longer than the context the
    /// model was trained on (what `herd run --sample` shows of a small run).
    /// `Generator` is the fast path (KV cache, batches) within the context.
    public func generate(prompt: [TokenID], count: Int, temperature: Double, seed: UInt64,
                         acts: Activations) -> [TokenID] {
        precondition(acts.batch == 1, "generation runs one sequence")
        let T = acts.seqLen, V = config.vocabSize
        var rng = SplitMix64(seed: seed)
        var out = prompt.isEmpty ? [TokenID(0)] : prompt
        let window = UnsafeMutablePointer<TokenID>.allocate(capacity: T)
        defer { window.deallocate() }
        for _ in 0..<count {
            let context = out.suffix(T)
            window.initialize(repeating: 0, count: T)   // causal: padding after the context is never seen
            for (i, t) in context.enumerated() { window[i] = t }
            forwardLogits(tokens: window, acts: acts)
            let logits = acts.logits.base + (context.count - 1) * V
            var next = 0
            if temperature <= 0 {
                for j in 1..<V where logits[j] > logits[next] { next = j }
            } else {
                let m = FastMath.max(logits, count: V)
                var p = (0..<V).map { Foundation.exp(Double(logits[$0] - m) / temperature) }
                let total = p.reduce(0, +)
                var u = rng.nextUnit() * total
                next = V - 1
                for j in 0..<V {
                    u -= p[j]
                    if u <= 0 { next = j; break }
                }
                p.removeAll()
            }
            out.append(TokenID(next))
        }
        return Array(out.suffix(count))
    }
}
