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

/// One named weight inside the flat parameter buffer: this rank's piece
/// (`shape`) of a tensor of `globalShape`, starting at `sliceStart` along
/// the axis its role splits (rows for column- and vocab-parallel, columns
/// for row-parallel).
public struct ParameterSpec: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var globalShape: [Int]
    public var sliceStart: Int
    public var offset: Int
    public var role: ShardRole
    /// Weight decay applies to matrices, not to normalisation gains.
    public var decays: Bool
    /// Ranks holding an identical copy of this piece (replicated gains: the
    /// tensor-parallel degree; a replicated KV head: its replicas; else 1).
    /// A global sum over ranks (the gradient norm) counts it once.
    public var copies: Int
    public var count: Int { shape.reduce(1, *) }
    /// The axis `sliceStart` is along, or nil when the piece is the whole tensor.
    public var splitAxis: Int? {
        switch role {
        case .replicated: return nil
        case .columnParallel, .vocabParallel: return 0
        case .rowParallel: return 1
        }
    }
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

    /// The layout of one tensor-parallel rank's piece (the whole model by default).
    public init(config c: LlamaConfig, shard: TensorShard? = nil) {
        let sh = shard ?? .whole(c)
        let hd = c.headDim
        var specs: [ParameterSpec] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], _ global: [Int], _ role: ShardRole, start: Int = 0,
                 copies: Int = 1, decays: Bool = true) -> Int {
            let spec = ParameterSpec(name: name, shape: shape, globalShape: global, sliceStart: start,
                                     offset: offset, role: role, decays: decays, copies: copies)
            specs.append(spec)
            offset += spec.count
            return spec.offset
        }
        let d = c.dim
        embedding = add("tok_embeddings.weight", [sh.vocab, d], [c.vocabSize, d], .vocabParallel, start: sh.vocabStart)
        var layers: [LayerOffsets] = []
        for i in 0..<c.layers {
            let p = "layers.\(i)."
            let an = add(p + "attention_norm.weight", [d], [d], .replicated, copies: sh.size, decays: false)
            let wq = add(p + "attention.wq.weight", [sh.heads * hd, d], [d, d], .columnParallel, start: sh.headStart * hd)
            let wk = add(p + "attention.wk.weight", [sh.kvHeads * hd, d], [c.kvDim, d], .columnParallel,
                         start: sh.kvHeadStart * hd, copies: sh.kvReplicas)
            let wv = add(p + "attention.wv.weight", [sh.kvHeads * hd, d], [c.kvDim, d], .columnParallel,
                         start: sh.kvHeadStart * hd, copies: sh.kvReplicas)
            let wo = add(p + "attention.wo.weight", [d, sh.heads * hd], [d, d], .rowParallel, start: sh.headStart * hd)
            let fn = add(p + "ffn_norm.weight", [d], [d], .replicated, copies: sh.size, decays: false)
            let w1 = add(p + "feed_forward.w1.weight", [sh.ffn, d], [c.ffnDim, d], .columnParallel, start: sh.ffnStart)
            let w3 = add(p + "feed_forward.w3.weight", [sh.ffn, d], [c.ffnDim, d], .columnParallel, start: sh.ffnStart)
            let w2 = add(p + "feed_forward.w2.weight", [d, sh.ffn], [d, c.ffnDim], .rowParallel, start: sh.ffnStart)
            layers.append(LayerOffsets(attentionNorm: an, wq: wq, wk: wk, wv: wv, wo: wo,
                                       ffnNorm: fn, w1: w1, w3: w3, w2: w2))
        }
        finalNorm = add("norm.weight", [d], [d], .replicated, copies: sh.size, decays: false)
        output = c.scalarHead
            ? add("reward_head.weight", [1, d], [1, d], .replicated, copies: sh.size)
            : add("output.weight", [sh.vocab, d], [c.vocabSize, d], .vocabParallel, start: sh.vocabStart)
        self.specs = specs
        self.layers = layers
        total = offset
    }

    public func spec(named name: String) -> ParameterSpec? { specs.first { $0.name == name } }
}
