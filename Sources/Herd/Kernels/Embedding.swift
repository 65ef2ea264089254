/// Token embedding: a row lookup in the table `[vocab, dim]`. With a
/// vocabulary-parallel table a rank holds rows [vocabStart, vocabStart +
/// vocab); tokens outside give zero rows, and the sum over ranks (one
/// all-reduce) is the full lookup.
public enum Embedding {
    public static func forward(
        out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<TokenID>,
        table: UnsafePointer<Float>, count: Int, dim: Int,
        vocabStart: Int = 0, vocab: Int = Int.max
    ) {
        for i in 0..<count {
            let row = Int(tokens[i]) - vocabStart
            if row >= 0 && row < vocab {
                (out + i * dim).update(from: table + row * dim, count: dim)
            } else {
                (out + i * dim).update(repeating: 0, count: dim)
            }
        }
    }

    /// dTable[token] += dOut[row] for every row whose token is in this table (scatter-add).
    public static func backward(
        dTable: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
        tokens: UnsafePointer<TokenID>, count: Int, dim: Int,
        vocabStart: Int = 0, vocab: Int = Int.max
    ) {
        for i in 0..<count {
            let row = Int(tokens[i]) - vocabStart
            guard row >= 0 && row < vocab else { continue }
            let dst = dTable + row * dim
            let src = dOut + i * dim
            for j in 0..<dim { dst[j] += src[j] }
        }
    }
}
