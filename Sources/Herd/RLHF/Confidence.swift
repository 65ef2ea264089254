import Foundation

/// A figure with the interval it is known to: the estimate (a mean over
/// prompts) and the bounds of its confidence interval at `level`.
public struct Interval: Sendable, Codable, Equatable {
    public var estimate: Double, low: Double, high: Double
    public var level: Double

    public init(estimate: Double, low: Double, high: Double, level: Double) {
        self.estimate = estimate; self.low = low; self.high = high; self.level = level
    }

    /// "0.398 [0.321, 0.472]"
    public var text: String { String(format: "%.3f [%.3f, %.3f]", estimate, low, high) }
    /// "+0.052 [-0.010, +0.113]", for a difference.
    public var signedText: String { String(format: "%+.3f [%+.3f, %+.3f]", estimate, low, high) }
}

/// Percentile bootstrap intervals over prompts. An evaluation's figures
/// are means over a few hundred held-out prompts, so a difference of a few
/// points between two iterations can be noise; the interval says how much.
/// Comparisons of two policies are paired: both answered the same prompts,
/// so the interval is of the mean per-prompt difference, which is much
/// narrower than two separate intervals when the policies agree on most
/// prompts. The resampling stream is fixed, so an interval is a pure
/// function of its values (a resumed pipeline decides as the first run did).
public enum Bootstrap {
    public static let resamples = 2000
    static let seed: UInt64 = 0x5EED_B007

    /// The mean of `values` with its two-sided interval at `level` (e.g. 0.95).
    public static func mean(_ values: [Double], level: Double) -> Interval {
        precondition(level > 0 && level < 1, "a confidence level is in (0, 1)")
        guard !values.isEmpty else { return Interval(estimate: .nan, low: .nan, high: .nan, level: level) }
        let n = values.count
        let estimate = values.reduce(0, +) / Double(n)
        var g = SplitMix64(seed: seed ^ UInt64(n))
        var means = [Double](repeating: 0, count: resamples)
        for b in 0..<resamples {
            var s = 0.0
            for _ in 0..<n { s += values[Int(g.next() % UInt64(n))] }
            means[b] = s / Double(n)
        }
        means.sort()
        let tail = (1 - level) / 2
        func quantile(_ q: Double) -> Double { means[min(resamples - 1, max(0, Int((q * Double(resamples)).rounded(.down))))] }
        return Interval(estimate: estimate, low: quantile(tail), high: quantile(1 - tail), level: level)
    }

    /// The mean difference a − b over the keys both have (the same prompts
    /// answered by two policies), with its interval; nil when they share none.
    public static func pairedDifference(_ a: [String: Double], _ b: [String: Double], level: Double) -> Interval? {
        let keys = a.keys.filter { b[$0] != nil }.sorted()
        guard !keys.isEmpty else { return nil }
        return mean(keys.map { a[$0]! - b[$0]! }, level: level)
    }
}
