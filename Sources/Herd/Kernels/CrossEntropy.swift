import Foundation

/// Softmax cross-entropy over logits[rows, vocab] with an ignore mask: a row
/// whose target is negative contributes neither loss nor gradient. The loss
/// is the mean over the rows that count.
public enum CrossEntropy {
    public static let ignoreIndex: TokenID = -1

    /// Returns (sum of per-row losses, number of rows counted); the sum is in
    /// Double so that large batches do not lose precision.
    public static func forward(
        logits: UnsafePointer<Float>, targets: UnsafePointer<TokenID>, rows: Int, vocab: Int
    ) -> (lossSum: Double, counted: Int) {
        var total = 0.0, counted = 0
        for r in 0..<rows where targets[r] >= 0 {
            let row = logits + r * vocab
            let m = FastMath.max(row, count: vocab)
            var s: Float = 0
            for j in 0..<vocab { s += FastMath.exp(row[j] - m) }
            total += Double(m) + Foundation.log(Double(s)) - Double(row[Int(targets[r])])
            counted += 1
        }
        return (total, counted)
    }

    /// Turns logits into dLogits in place: (softmax − onehot) · scale, and 0 on
    /// ignored rows. `scale` is 1/(rows counted in the whole global batch).
    /// Returns the summed loss as forward does, computed on the way.
    public static func forwardBackward(
        logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<TokenID>,
        rows: Int, vocab: Int, scale: Float
    ) -> (lossSum: Double, counted: Int) {
        var total = 0.0, counted = 0
        for r in 0..<rows {
            let row = logits + r * vocab
            let t = Int(targets[r])
            if t < 0 {
                row.update(repeating: 0, count: vocab)
                continue
            }
            let m = FastMath.max(row, count: vocab)
            let target = row[t]
            let sum = FastMath.expShiftedSum(row, count: vocab, shift: m)
            total += Double(m) + Foundation.log(Double(sum)) - Double(target)
            counted += 1
            let inv = scale / sum
            for j in 0..<vocab { row[j] *= inv }
            row[t] -= scale
        }
        return (total, counted)
    }
}

