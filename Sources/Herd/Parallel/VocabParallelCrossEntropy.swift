import Foundation

/// Softmax cross-entropy over logits split by vocabulary across the
/// tensor-parallel ranks (Megatron-LM's vocab-parallel cross-entropy): each
/// rank holds logits[rows, vocab/tp] and the full logits are never
/// gathered. Three all-reduces of one value per row: the max, the sum of
/// exponentials, and the target's logit (held by exactly one rank).
public enum VocabParallelCrossEntropy {
    /// Loss (summed over counted rows, as CrossEntropy.forward) and, when
    /// `scale` is given, dLogits in place: (softmax − onehot) · scale.
    /// `stats` holds 3·rows floats of scratch.
    public static func run(
        logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<TokenID>,
        rows: Int, vocab: Int, vocabStart: Int, stats: UnsafeMutablePointer<Float>,
        group: Communicator, scale: Float?
    ) -> (lossSum: Double, counted: Int) {
        let maxes = stats, sums = stats + rows, picked = stats + 2 * rows
        for r in 0..<rows { maxes[r] = FastMath.max(logits + r * vocab, count: vocab) }
        group.allReduce(maxes, count: rows, op: .max)
        for r in 0..<rows {
            let row = logits + r * vocab
            let t = Int(targets[r]) - vocabStart
            picked[r] = (targets[r] >= 0 && t >= 0 && t < vocab) ? row[t] : 0
            if scale != nil {
                sums[r] = FastMath.expShiftedSum(row, count: vocab, shift: maxes[r])   // row now holds exp(l − max)
            } else {
                var s: Float = 0
                for j in 0..<vocab { s += FastMath.exp(row[j] - maxes[r]) }
                sums[r] = s
            }
        }
        group.allReduce(sums, count: 2 * rows, op: .sum)   // sums and picked are adjacent
        var total = 0.0, counted = 0
        for r in 0..<rows {
            let row = logits + r * vocab
            guard targets[r] >= 0 else {
                if scale != nil { row.update(repeating: 0, count: vocab) }
                continue
            }
            total += Double(maxes[r]) + Foundation.log(Double(sums[r])) - Double(picked[r])
            counted += 1
            if let scale {
                let inv = scale / sums[r]
                for j in 0..<vocab { row[j] *= inv }
                let t = Int(targets[r]) - vocabStart
                if t >= 0 && t < vocab { row[t] -= scale }
            }
        }
        return (total, counted)
    }
}
