import Foundation

/// AdamW (Loshchilov & Hutter) with decoupled weight decay, as PyTorch's
/// `torch.optim.AdamW`: p ← p·(1 − lr·wd) − lr · m̂ / (√v̂ + eps).
/// Defaults are the Llama 2 paper's: β 0.9/0.95, eps 1e-5, weight decay 0.1.
public struct AdamWConfig: Codable, Sendable, Equatable {
    public var beta1: Double = 0.9
    public var beta2: Double = 0.95
    public var eps: Double = 1e-5
    public var weightDecay: Double = 0.1
    public init() {}
}

public final class AdamW {
    public let config: AdamWConfig
    public let m: FloatBuffer
    public let v: FloatBuffer
    /// Number of updates applied so far (for bias correction).
    public private(set) var step: Int = 0
    /// [offset, count, decays] spans of the flat buffer.
    let spans: [(offset: Int, count: Int, decays: Bool)]

    public init(config: AdamWConfig, layout: ParameterLayout) {
        self.config = config
        m = FloatBuffer(count: layout.total)
        v = FloatBuffer(count: layout.total)
        spans = layout.specs.map { ($0.offset, $0.count, $0.decays) }
    }

    /// One update of `params` from `grads` at learning rate `lr`, split over
    /// `threads` equal ranges of the buffer (the update is elementwise).
    public func update(params: FloatBuffer, grads: FloatBuffer, lr: Double, threads: Int = 1) {
        step += 1
        let b1 = Float(config.beta1), b2 = Float(config.beta2)
        let c1 = Float(1 / (1 - Foundation.pow(config.beta1, Double(step))))
        let c2 = Float(1 / (1 - Foundation.pow(config.beta2, Double(step))))
        let eps = Float(config.eps), flr = Float(lr)
        let decayFactor = 1 - flr * Float(config.weightDecay)
        let P = params.base, G = grads.base, M = m.base, V = v.base
        let total = params.count, spans = self.spans
        let chunk = (total + threads - 1) / max(threads, 1)
        DispatchQueue.concurrentPerform(iterations: max(threads, 1)) { c in
            let lo = c * chunk, hi = min(total, lo + chunk)
            for span in spans {
                let start = max(span.offset, lo), end = min(span.offset + span.count, hi)
                guard start < end else { continue }
                let decay: Float = span.decays ? decayFactor : 1
                for i in start..<end {
                    let g = G[i]
                    let mi = b1 * M[i] + (1 - b1) * g
                    let vi = b2 * V[i] + (1 - b2) * g * g
                    M[i] = mi
                    V[i] = vi
                    P[i] = P[i] * decay - flr * (mi * c1) / ((vi * c2).squareRoot() + eps)
                }
            }
        }
    }
}

