/// Token embedding: a row lookup in the table `[vocab, dim]`.
public enum Embedding {
    public static func forward(
        out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<TokenID>,
        table: UnsafePointer<Float>, count: Int, dim: Int
    ) {
        for i in 0..<count {
            (out + i * dim).update(from: table + Int(tokens[i]) * dim, count: dim)
        }
    }

    /// dTable[token] += dOut[row] for every row (scatter-add).
    public static func backward(
        dTable: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
        tokens: UnsafePointer<TokenID>, count: Int, dim: Int
    ) {
        for i in 0..<count {
            let dst = dTable + Int(tokens[i]) * dim
            let src = dOut + i * dim
            for j in 0..<dim { dst[j] += src[j] }
        }
    }
}
