import Foundation

/// How much better annotators found the chosen answer (../shared/RLHF.md).
public enum PreferenceDegree: String, Codable, Sendable, CaseIterable {
    case significantlyBetter = "significantly_better"
    case better
    case slightlyBetter = "slightly_better"
    case negligiblyBetter = "negligibly_better"
}

/// The margin m(degree) of the Llama 2 reward models' loss (paper, table
/// 28): a larger margin for a clearer preference pushes the two rewards further apart.
public enum MarginTable: String, Codable, Sendable, CaseIterable {
    case none, small, large

    public func margin(_ d: PreferenceDegree) -> Double {
        switch (self, d) {
        case (.none, _), (_, .negligiblyBetter): return 0
        case (.small, .significantlyBetter): return 1
        case (.small, .better): return 2.0 / 3.0
        case (.small, .slightlyBetter): return 1.0 / 3.0
        case (.large, .significantlyBetter): return 3
        case (.large, .better): return 2
        case (.large, .slightlyBetter): return 1
        }
    }
}

/// The reward models' binary ranking loss with a margin,
/// L = −log σ(r_c − r_r − m), forward beside backward. Written as
/// softplus(−x) with x = r_c − r_r − m so that it neither overflows nor
/// loses precision for large |x|.
public enum RankingLoss {
    public static func forward(chosen: Double, rejected: Double, margin: Double) -> Double {
        let x = chosen - rejected - margin
        return x > 0 ? Foundation.log1p(Foundation.exp(-x)) : -x + Foundation.log1p(Foundation.exp(x))
    }

    /// dL/dr_c = −σ(−x) and dL/dr_r = +σ(−x).
    public static func backward(chosen: Double, rejected: Double, margin: Double) -> (dChosen: Double, dRejected: Double) {
        let x = chosen - rejected - margin
        let s = x >= 0 ? Foundation.exp(-x) / (1 + Foundation.exp(-x)) : 1 / (1 + Foundation.exp(x))   // σ(−x)
        return (-s, s)
    }
}

/// The reward model's scalar head: r = w · h, where h is the final
/// (normalised) hidden state at the last token of the answer, forward
/// beside backward (gradients accumulate, as every kernel's do).
public enum ScalarHead {
    public static func forward(hidden h: UnsafePointer<Float>, weight w: UnsafePointer<Float>, dim: Int) -> Float {
        FastMath.dot(h, w, count: dim)
    }

    /// dh += dr · w; dw += dr · h.
    public static func backward(dReward dr: Float, hidden h: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                                dHidden: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>, dim: Int) {
        for i in 0..<dim {
            dHidden[i] += dr * w[i]
            dWeight[i] += dr * h[i]
        }
    }
}
