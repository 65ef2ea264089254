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

/// The ranking loss over a micro-batch of a scalar-head model. Pairs are
/// adjacent sequences: 2i holds the chosen answer, 2i + 1 the rejected
/// one. In each, the target at the row whose reward is read (the answer's
/// last token) is the margin in thousandths (≥ 0; the rejected sequence's
/// value is not used), and every other target is the ignore index. Returns
/// the summed loss and the pairs counted; with `scale`, overwrites the
/// rewards with dLoss/dreward · scale (zero on every other row).
public enum RewardPairs {
    public static func run(rewards r: UnsafeMutablePointer<Float>, targets: UnsafePointer<TokenID>,
                           batch: Int, seqLen T: Int, scale: Float?) -> (lossSum: Double, counted: Int) {
        precondition(batch % 2 == 0, "a micro-batch of reward pairs holds an even number of sequences")
        func readRow(_ sequence: Int) -> Int? {
            (0..<T).last { targets[sequence * T + $0] != CrossEntropy.ignoreIndex }.map { sequence * T + $0 }
        }
        var pairs: [(chosen: Int, rejected: Int, margin: Double)] = []
        for i in 0..<(batch / 2) {
            guard let c = readRow(2 * i), let j = readRow(2 * i + 1) else { continue }
            pairs.append((c, j, Double(targets[c]) / 1000))
        }
        var loss = 0.0
        var grads: [(Int, Float)] = []
        for p in pairs {
            let (rc, rr) = (Double(r[p.chosen]), Double(r[p.rejected]))
            loss += RankingLoss.forward(chosen: rc, rejected: rr, margin: p.margin)
            if let scale {
                let g = RankingLoss.backward(chosen: rc, rejected: rr, margin: p.margin)
                grads += [(p.chosen, Float(g.dChosen) * scale), (p.rejected, Float(g.dRejected) * scale)]
            }
        }
        if scale != nil {
            r.update(repeating: 0, count: batch * T)
            for (row, g) in grads { r[row] += g }
        }
        return (loss, pairs.count)
    }
}
