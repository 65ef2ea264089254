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
    /// The parameters this optimizer updates: all of them, or with ZeRO-1
    /// this data-parallel rank's contiguous part of the flat buffer.
    public let range: Range<Int>
    /// First and second moments of `range` (m[0] belongs to range.lowerBound).
    public let m: FloatBuffer
    public let v: FloatBuffer
    /// Number of updates applied so far (for bias correction).
    public private(set) var step: Int = 0
    /// [offset, count, decays] spans of the flat buffer.
    let spans: [(offset: Int, count: Int, decays: Bool)]

    public init(config: AdamWConfig, layout: ParameterLayout, range: Range<Int>? = nil) {
        self.config = config
        self.range = range ?? 0..<layout.total
        m = FloatBuffer(count: self.range.count)
        v = FloatBuffer(count: self.range.count)
        spans = layout.specs.map { ($0.offset, $0.count, $0.decays) }
    }

    /// Continues from a checkpoint taken after `step` updates (the moments are loaded separately).
    public func restore(step: Int) { self.step = step }

    /// One update over all parameters.
    public func update(params: FloatBuffer, grads: FloatBuffer, lr: Double, threads: Int = 1) {
        precondition(range == 0..<params.count, "this optimizer holds a part of the parameters")
        update(params: params.base, grads: grads.base, lr: lr, threads: threads)
    }

    /// One update of params[range] from grads (grads[0] belongs to
    /// range.lowerBound) at learning rate `lr`, split over `threads` equal
    /// parts (the update is elementwise).
    public func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Double, threads: Int = 1) {
        step += 1
        let b1 = Float(config.beta1), b2 = Float(config.beta2)
        let c1 = Float(1 / (1 - Foundation.pow(config.beta1, Double(step))))
        let c2 = Float(1 / (1 - Foundation.pow(config.beta2, Double(step))))
        let eps = Float(config.eps), flr = Float(lr)
        let decayFactor = 1 - flr * Float(config.weightDecay)
        let base = range.lowerBound
        let P = params, G = grads - base, M = m.base - base, V = v.base - base
        let spans = self.spans
        let chunk = (range.count + threads - 1) / max(threads, 1)
        DispatchQueue.concurrentPerform(iterations: max(threads, 1)) { c in
            let lo = base + c * chunk, hi = min(range.upperBound, lo + chunk)
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

