/// The shape of a Llama 2 model. Value type: a plan or a manifest carries it.
public struct LlamaConfig: Codable, Sendable, Equatable {
    public var dim: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var ffnDim: Int
    public var vocabSize: Int
    public var maxSeqLen: Int
    public var normEps: Float = 1e-5
    public var ropeTheta: Double = 10000
    /// A reward model: the next-token output layer replaced by a scalar
    /// head (`reward_head.weight`, [1, dim]) read at the answer's last token.
    public var scalarHead = false

    public init(dim: Int, layers: Int, heads: Int, kvHeads: Int, ffnDim: Int,
                vocabSize: Int, maxSeqLen: Int, normEps: Float = 1e-5, ropeTheta: Double = 10000) {
        self.dim = dim; self.layers = layers; self.heads = heads; self.kvHeads = kvHeads
        self.ffnDim = ffnDim; self.vocabSize = vocabSize; self.maxSeqLen = maxSeqLen
        self.normEps = normEps; self.ropeTheta = ropeTheta
    }

    // Files written before a field existed decode with its default.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        dim = try c.decode(Int.self, forKey: .dim)
        layers = try c.decode(Int.self, forKey: .layers)
        heads = try c.decode(Int.self, forKey: .heads)
        kvHeads = try c.decode(Int.self, forKey: .kvHeads)
        ffnDim = try c.decode(Int.self, forKey: .ffnDim)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        maxSeqLen = try c.decode(Int.self, forKey: .maxSeqLen)
        normEps = try c.decodeIfPresent(Float.self, forKey: .normEps) ?? 1e-5
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? 10000
        scalarHead = try c.decodeIfPresent(Bool.self, forKey: .scalarHead) ?? false
    }

    /// The width of the output layer: the vocabulary, or 1 for a scalar head.
    public var outputWidth: Int { scalarHead ? 1 : vocabSize }

    public var headDim: Int { heads > 0 ? dim / heads : 0 }
    public var kvDim: Int { kvHeads * headDim }

    /// Every weight, counted from the shapes alone (nothing is allocated).
    public var parameterCount: Int {
        let perLayer = 2 * dim              // attention_norm, ffn_norm
            + dim * dim * 2                 // wq, wo
            + 2 * dim * kvDim               // wk, wv
            + 3 * dim * ffnDim              // w1, w3, w2
        return vocabSize * dim + outputWidth * dim + layers * perLayer + dim
    }

    /// Parameters that take part in matrix products (all but the embedding
    /// table, which is a lookup); the 6·N·tokens FLOP count uses this.
    public var matmulParameterCount: Int { parameterCount - vocabSize * dim }

    /// Training FLOPs per token: 6 per matmul weight (forward 2, backward 4)
    /// plus causal attention, Q·Kᵀ and P·V over on average T/2 keys:
    /// forward 2·(2·d·T/2) per layer, ×3 with backward.
    public func trainingFLOPsPerToken(seqLen: Int) -> Double {
        6 * Double(matmulParameterCount) + 6 * Double(layers) * Double(dim) * Double(seqLen)
    }

    /// The FLOPs per token recomputation adds in backward (hardware FLOPs,
    /// not model FLOPs): `full` runs each block's forward again (its
    /// products, but not the last one, w2, whose output is kept), `selective`
    /// the attention's Q·Kᵀ and P·V.
    public func recomputeFLOPsPerToken(seqLen: Int, checkpoint: ActivationCheckpoint) -> Double {
        let attention = 2 * Double(layers) * Double(dim) * Double(seqLen)
        switch checkpoint {
        case .none: return 0
        case .selective: return attention
        case .full:
            let blockMatmuls = Double(matmulParameterCount - outputWidth * dim - layers * ffnDim * dim)
            return 2 * blockMatmuls + attention
        }
    }

    /// Checks that the shape is one the kernels can run; throws what to fix.
    public func validate() throws(ConfigError) {
        func positive(_ v: Int, _ field: String) throws(ConfigError) {
            if v <= 0 { throw ConfigError(field: field, message: "must be a positive integer, got \(v)") }
        }
        try positive(dim, "dim"); try positive(layers, "layers"); try positive(heads, "heads")
        try positive(kvHeads, "kv_heads"); try positive(ffnDim, "ffn_dim")
        try positive(vocabSize, "vocab_size"); try positive(maxSeqLen, "max_seq_len")
        if dim % heads != 0 {
            throw ConfigError(field: "heads", message: "must divide dim (\(dim)), got \(heads)")
        }
        if heads % kvHeads != 0 {
            throw ConfigError(field: "kv_heads", message: "must divide heads (\(heads)), got \(kvHeads)")
        }
        if headDim % 2 != 0 {
            throw ConfigError(field: "heads", message: "dim/heads = \(headDim) must be even for rotary embeddings")
        }
        if !(normEps > 0) { throw ConfigError(field: "norm_eps", message: "must be > 0, got \(normEps)") }
    }
}

public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String
    public var description: String { "\(field): \(message)" }
}

extension LlamaConfig {
    /// Named shapes. The three Llama 2 sizes are the paper's (Touvron et al.
    /// 2023, table 1 and Meta's params.json); the small ones train on this
    /// machine. Small presets take their vocabulary from the job's tokenizer.
    public static let presets: [String: LlamaConfig] = [
        "llama2-7b": LlamaConfig(dim: 4096, layers: 32, heads: 32, kvHeads: 32, ffnDim: 11008,
                                 vocabSize: 32000, maxSeqLen: 4096),
        "llama2-13b": LlamaConfig(dim: 5120, layers: 40, heads: 40, kvHeads: 40, ffnDim: 13824,
                                  vocabSize: 32000, maxSeqLen: 4096),
        "llama2-70b": LlamaConfig(dim: 8192, layers: 80, heads: 64, kvHeads: 8, ffnDim: 28672,
                                  vocabSize: 32000, maxSeqLen: 4096),
        // nanoGPT's CPU Shakespeare model as a Llama: FFN 352 ≈ 8/3·128 rounded up to 32.
        "shakespeare-char": LlamaConfig(dim: 128, layers: 4, heads: 4, kvHeads: 4, ffnDim: 352,
                                        vocabSize: 0, maxSeqLen: 64),
        // The larger benchmark model: FFN 1376 ≈ 8/3·512 rounded up to 32.
        "small-512": LlamaConfig(dim: 512, layers: 8, heads: 8, kvHeads: 8, ffnDim: 1376,
                                 vocabSize: 0, maxSeqLen: 256),
        // The shape of llama2.c's stories15M (Karpathy's TinyStories model), for generation benchmarks.
        "stories15m": LlamaConfig(dim: 288, layers: 6, heads: 6, kvHeads: 6, ffnDim: 768,
                                  vocabSize: 32000, maxSeqLen: 256),
        // For tests: grouped-query attention with 4 query and 2 KV heads.
        "tiny-gqa": LlamaConfig(dim: 32, layers: 2, heads: 4, kvHeads: 2, ffnDim: 64,
                                vocabSize: 0, maxSeqLen: 16),
    ]
}
