import Foundation

/// Linear warmup to the peak, then cosine decay to `minRatio`·peak at
/// `decaySteps`, constant after. The paper: 2000 warmup steps, floor 10%.
public struct CosineSchedule: Codable, Sendable, Equatable {
    public var peak: Double
    public var warmupSteps: Int = 2000
    public var decaySteps: Int
    public var minRatio: Double = 0.1

    public init(peak: Double, warmupSteps: Int = 2000, decaySteps: Int, minRatio: Double = 0.1) {
        self.peak = peak; self.warmupSteps = warmupSteps
        self.decaySteps = decaySteps; self.minRatio = minRatio
    }

    /// Learning rate for the update at 0-based `step`.
    public func rate(at step: Int) -> Double {
        if step < warmupSteps { return peak * Double(step + 1) / Double(warmupSteps) }
        let span = max(decaySteps - warmupSteps, 1)
        let progress = min(Double(step - warmupSteps) / Double(span), 1)
        let floor = peak * minRatio
        return floor + (peak - floor) * 0.5 * (1 + Foundation.cos(.pi * progress))
    }
}
