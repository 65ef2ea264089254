/// How a weight matrix is cut under Megatron-style tensor parallelism. The
/// layout records it now so that sharding, checkpoint manifests and
/// resharding read it from one place.
public enum ShardRole: String, Codable, Sendable {
    /// Same on every tensor-parallel rank (RMSNorm gains).
    case replicated
    /// Rows of W[out, in] (output features) split across ranks: wq, wk, wv, w1, w3.
    case columnParallel = "column"
    /// Columns of W[out, in] (input features) split: wo, w2; one all-reduce after.
    case rowParallel = "row"
    /// Vocabulary rows split: the embedding table and the output layer.
    case vocabParallel = "vocab"
}

/// One named weight inside the flat parameter buffer.
public struct ParameterSpec: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var offset: Int
    public var role: ShardRole
    /// Weight decay applies to matrices, not to normalisation gains.
    public var decays: Bool
    public var count: Int { shape.reduce(1, *) }
}

/// Offsets of one transformer block's weights. Q, K and V are adjacent (so
/// one product computes all three) and so are W1 and W3.
public struct LayerOffsets: Sendable {
    public var attentionNorm, wq, wk, wv, wo, ffnNorm, w1, w3, w2: Int
}

/// Every weight of the model in one contiguous buffer, named as in Meta's
/// reference checkpoints (`layers.0.attention.wq.weight`, ...).
public struct ParameterLayout: Sendable {
    public let specs: [ParameterSpec]
    public let total: Int
    public let embedding: Int
    public let layers: [LayerOffsets]
    public let finalNorm: Int
    public let output: Int

    public init(config c: LlamaConfig) {
        var specs: [ParameterSpec] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], _ role: ShardRole, decays: Bool = true) -> Int {
            let spec = ParameterSpec(name: name, shape: shape, offset: offset, role: role, decays: decays)
            specs.append(spec)
            offset += spec.count
            return spec.offset
        }
        embedding = add("tok_embeddings.weight", [c.vocabSize, c.dim], .vocabParallel)
        var layers: [LayerOffsets] = []
        for i in 0..<c.layers {
            let p = "layers.\(i)."
            let an = add(p + "attention_norm.weight", [c.dim], .replicated, decays: false)
            let wq = add(p + "attention.wq.weight", [c.dim, c.dim], .columnParallel)
            let wk = add(p + "attention.wk.weight", [c.kvDim, c.dim], .columnParallel)
            let wv = add(p + "attention.wv.weight", [c.kvDim, c.dim], .columnParallel)
            let wo = add(p + "attention.wo.weight", [c.dim, c.dim], .rowParallel)
            let fn = add(p + "ffn_norm.weight", [c.dim], .replicated, decays: false)
            let w1 = add(p + "feed_forward.w1.weight", [c.ffnDim, c.dim], .columnParallel)
            let w3 = add(p + "feed_forward.w3.weight", [c.ffnDim, c.dim], .columnParallel)
            let w2 = add(p + "feed_forward.w2.weight", [c.dim, c.ffnDim], .rowParallel)
            layers.append(LayerOffsets(attentionNorm: an, wq: wq, wk: wk, wv: wv, wo: wo,
                                       ffnNorm: fn, w1: w1, w3: w3, w2: w2))
        }
        finalNorm = add("norm.weight", [c.dim], .replicated, decays: false)
        output = add("output.weight", [c.vocabSize, c.dim], .vocabParallel)
        self.specs = specs
        self.layers = layers
        total = offset
    }

    public func spec(named name: String) -> ParameterSpec? { specs.first { $0.name == name } }
}
