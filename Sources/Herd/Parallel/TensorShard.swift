/// What one tensor-parallel rank holds of the model, Megatron-LM style:
/// a contiguous block of query heads, the KV heads they read, a block of
/// FFN columns and a block of the vocabulary. With grouped-query attention
/// and fewer KV heads than ranks, each KV head is replicated on the
/// size/kvHeads ranks whose query heads read it.
public struct TensorShard: Codable, Sendable, Equatable {
    public var rank: Int
    public var size: Int
    public var headStart: Int, heads: Int
    public var kvHeadStart: Int, kvHeads: Int
    public var ffnStart: Int, ffn: Int
    public var vocabStart: Int, vocab: Int

    /// How many ranks hold a copy of each of this rank's KV heads.
    public var kvReplicas: Int

    /// The whole model on one rank.
    public static func whole(_ c: LlamaConfig) -> TensorShard {
        TensorShard(rank: 0, size: 1, headStart: 0, heads: c.heads, kvHeadStart: 0, kvHeads: c.kvHeads,
                    ffnStart: 0, ffn: c.ffnDim, vocabStart: 0, vocab: c.vocabSize, kvReplicas: 1)
    }

    /// Rank `rank` of `size`; throws naming the field that does not divide.
    public static func make(_ c: LlamaConfig, rank: Int, size: Int) throws(ConfigError) -> TensorShard {
        if size == 1 { return whole(c) }
        func divides(_ n: Int, _ field: String) throws(ConfigError) {
            if n % size != 0 {
                throw ConfigError(field: field, message: "must be divisible by the tensor-parallel degree \(size), got \(n)")
            }
        }
        try divides(c.heads, "heads")
        try divides(c.ffnDim, "ffn_dim")
        try divides(c.vocabSize, "vocab_size")
        let kvStart: Int, kvLocal: Int, replicas: Int
        if c.kvHeads >= size {
            try divides(c.kvHeads, "kv_heads")
            kvLocal = c.kvHeads / size
            kvStart = rank * kvLocal
            replicas = 1
        } else {
            guard size % c.kvHeads == 0 else {
                throw ConfigError(field: "kv_heads", message: "with fewer KV heads than tensor-parallel ranks (\(size)), must divide it; got \(c.kvHeads)")
            }
            replicas = size / c.kvHeads
            kvLocal = 1
            kvStart = rank / replicas
        }
        let h = c.heads / size, f = c.ffnDim / size, v = c.vocabSize / size
        return TensorShard(rank: rank, size: size, headStart: rank * h, heads: h, kvHeadStart: kvStart, kvHeads: kvLocal,
                           ffnStart: rank * f, ffn: f, vocabStart: rank * v, vocab: v, kvReplicas: replicas)
    }
}
