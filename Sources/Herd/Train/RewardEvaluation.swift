import Foundation

/// A reward model on held-out comparisons: the mean ranking loss, and how
/// often the chosen answer gets the higher reward — overall and per degree
/// of preference, as in the paper's reward-model table.
public struct RewardAccuracy: Sendable, Equatable {
    public var loss: Double
    public var correct: [PreferenceDegree: Int]
    public var total: [PreferenceDegree: Int]

    public var overall: Double {
        Double(correct.values.reduce(0, +)) / Double(max(1, total.values.reduce(0, +)))
    }

    public func accuracy(_ d: PreferenceDegree) -> Double? {
        guard let n = total[d], n > 0 else { return nil }
        return Double(correct[d] ?? 0) / Double(n)
    }

    /// Puts the accuracies into an `eval` event.
    func record(in event: inout RunEvent) {
        event.accuracy = overall
        event.pairs = total.values.reduce(0, +)
        for d in PreferenceDegree.allCases { event.setAccuracy(accuracy(d), d) }
        event.pairsByDegree = Dictionary(uniqueKeysWithValues: total.filter { $0.value > 0 }.map { ($0.key.rawValue, $0.value) })
    }

    public var summary: String {
        String(format: "accuracy %.3f", overall) + " (" + PreferenceDegree.allCases.compactMap { d in
            accuracy(d).map { String(format: "%@ %.3f of %d", d.rawValue, $0, total[d] ?? 0) }
        }.joined(separator: ", ") + ")"
    }
}

extension Trainer {
    /// Pairs p ≡ d (mod dp) on data rank d, one pair (two sequences) a
    /// forward pass; the tensor ranks of a group compute the same pairs.
    func evaluateRewards(_ pairs: [ComparisonDataset.Pair]) throws -> RewardAccuracy {
        let data = dataset, T = data.seqLen, dp = context.data.size, d = context.data.rank
        let acts = model.makeActivations(batch: 2, seqLen: T)
        let degrees = PreferenceDegree.allCases
        var stats = [Double](repeating: 0, count: 1 + 2 * degrees.count)   // loss, then (correct, total) per degree
        for p in stride(from: d, to: pairs.count, by: dp) {
            try data.validationWindow(2 * p, tokens: tokens, targets: targets)
            try data.validationWindow(2 * p + 1, tokens: tokens + T, targets: targets + T)
            let r = model.loss(tokens: tokens, targets: targets, acts: acts)
            stats[0] += r.lossSum
            let pair = pairs[p]
            let chosen = acts.logits[pair.chosen.readRow], rejected = acts.logits[T + pair.rejected.readRow]
            let k = 1 + 2 * degrees.firstIndex(of: pair.degree)!
            stats[k] += chosen > rejected ? 1 : 0
            stats[k + 1] += 1
        }
        // A ZeRO-3 forward is collective over the data ranks: a rank with
        // fewer pairs runs forwards on padding until it has run as many as
        // the rank with most.
        if model.shards?.weights != nil {
            let most = (pairs.count + dp - 1) / dp, mine = max(0, (pairs.count - d + dp - 1) / dp)
            tokens.update(repeating: 0, count: 2 * T)
            targets.update(repeating: CrossEntropy.ignoreIndex, count: 2 * T)
            for _ in mine..<most { _ = model.loss(tokens: tokens, targets: targets, acts: acts) }
        }
        context.data.allReduce(&stats, count: stats.count, op: .sum)
        var correct: [PreferenceDegree: Int] = [:], total: [PreferenceDegree: Int] = [:]
        for (i, deg) in degrees.enumerated() {
            correct[deg] = Int(stats[1 + 2 * i]); total[deg] = Int(stats[2 + 2 * i])
        }
        let n = total.values.reduce(0, +)
        return RewardAccuracy(loss: n > 0 ? stats[0] / Double(n) : .nan, correct: correct, total: total)
    }
}
