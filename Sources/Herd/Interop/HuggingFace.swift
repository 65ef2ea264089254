import Foundation

/// Hugging Face's LlamaForCausalLM layout: `config.json` and
/// `model.safetensors` (or shards listed in `model.safetensors.index.json`),
/// with transformers' tensor names. Herd keeps Meta's names and rotary
/// convention; transformers' checkpoints store the rows of q_proj and
/// k_proj permuted for its "rotate half" rotary embedding (the permutation
/// in transformers' convert_llama_weights_to_hf.py), so import undoes it and
/// export applies it.
public enum HuggingFace {
    /// Meta name → transformers name, for one model.
    public static func names(_ c: LlamaConfig) -> [(meta: String, hf: String)] {
        var out = [("tok_embeddings.weight", "model.embed_tokens.weight")]
        for i in 0..<c.layers {
            let m = "layers.\(i).", h = "model.layers.\(i)."
            out += [(m + "attention_norm.weight", h + "input_layernorm.weight"),
                    (m + "attention.wq.weight", h + "self_attn.q_proj.weight"),
                    (m + "attention.wk.weight", h + "self_attn.k_proj.weight"),
                    (m + "attention.wv.weight", h + "self_attn.v_proj.weight"),
                    (m + "attention.wo.weight", h + "self_attn.o_proj.weight"),
                    (m + "ffn_norm.weight", h + "post_attention_layernorm.weight"),
                    (m + "feed_forward.w1.weight", h + "mlp.gate_proj.weight"),
                    (m + "feed_forward.w3.weight", h + "mlp.up_proj.weight"),
                    (m + "feed_forward.w2.weight", h + "mlp.down_proj.weight")]
        }
        return out + [("norm.weight", "model.norm.weight"), ("output.weight", "lm_head.weight")]
    }

    /// Meta → HF for q/k rows [heads · headDim, dim]: within each head, row
    /// 2i + j (pair i, member j) moves to j · headDim/2 + i.
    public static func permuteToHF(_ w: [Float], heads: Int, cols: Int) -> [Float] {
        permute(w, heads: heads, cols: cols, toHF: true)
    }

    public static func permuteFromHF(_ w: [Float], heads: Int, cols: Int) -> [Float] {
        permute(w, heads: heads, cols: cols, toHF: false)
    }

    static func permute(_ w: [Float], heads: Int, cols: Int, toHF: Bool) -> [Float] {
        let rows = w.count / cols, hd = rows / heads, half = hd / 2
        var out = [Float](repeating: 0, count: w.count)
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 {
                    let meta = h * hd + 2 * i + j, hf = h * hd + j * half + i
                    let (src, dst) = toHF ? (meta, hf) : (hf, meta)
                    for c in 0..<cols { out[dst * cols + c] = w[src * cols + c] }
                }
            }
        }
        return out
    }

    // MARK: config.json

    public static func readConfig(dir: String) throws -> LlamaConfig {
        let path = (dir as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: path) else { throw InteropError.file(path, "missing") }
        guard let j = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw InteropError.file(path, "not a JSON object")
        }
        func int(_ k: String, _ fallback: Int? = nil) throws -> Int {
            if let v = j[k] as? Int { return v }
            if let f = fallback { return f }
            throw InteropError.file(path, "\(k): expected an integer")
        }
        if let arch = (j["architectures"] as? [String])?.first, arch != "LlamaForCausalLM" {
            throw InteropError.file(path, "architectures: expected LlamaForCausalLM, got \(arch)")
        }
        if (j["tie_word_embeddings"] as? Bool) == true {
            throw InteropError.file(path, "tie_word_embeddings: Llama 2 has an untied output layer; tied models are not supported")
        }
        let heads = try int("num_attention_heads")
        let c = LlamaConfig(dim: try int("hidden_size"), layers: try int("num_hidden_layers"), heads: heads,
                            kvHeads: try int("num_key_value_heads", heads), ffnDim: try int("intermediate_size"),
                            vocabSize: try int("vocab_size"), maxSeqLen: try int("max_position_embeddings", 4096),
                            normEps: Float((j["rms_norm_eps"] as? Double) ?? 1e-5), ropeTheta: (j["rope_theta"] as? Double) ?? 10000)
        do { try c.validate() } catch { throw InteropError.file(path, "\(error)") }
        return c
    }

    public static func configJSON(_ c: LlamaConfig, dtype: String, bos: Int = 1, eos: Int = 2) throws -> Data {
        let j: [String: Any] = [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": c.dim, "intermediate_size": c.ffnDim, "num_hidden_layers": c.layers,
            "num_attention_heads": c.heads, "num_key_value_heads": c.kvHeads, "vocab_size": c.vocabSize,
            "max_position_embeddings": c.maxSeqLen, "rms_norm_eps": Double(c.normEps), "rope_theta": c.ropeTheta,
            "hidden_act": "silu", "tie_word_embeddings": false, "attention_bias": false, "mlp_bias": false,
            "initializer_range": 0.02, "pretraining_tp": 1, "use_cache": true,
            "bos_token_id": bos, "eos_token_id": eos,
            "torch_dtype": dtype == "F32" ? "float32" : dtype == "BF16" ? "bfloat16" : "float16",
        ]
        return try JSONSerialization.data(withJSONObject: j, options: [.prettyPrinted, .sortedKeys])
    }

    // MARK: import / export

    /// Every weight of a Hugging Face directory, by Meta name, in Meta's layout.
    public static func load(dir: String) throws -> (config: LlamaConfig, tensors: [String: [Float]]) {
        let config = try readConfig(dir: dir)
        let index = (dir as NSString).appendingPathComponent("model.safetensors.index.json")
        var fileFor: [String: String] = [:]
        if let data = FileManager.default.contents(atPath: index) {
            guard let j = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = j["weight_map"] as? [String: String] else {
                throw InteropError.file(index, "expected a JSON object with a weight_map")
            }
            fileFor = map
        }
        var files: [String: SafetensorsFile] = [:]
        func file(_ name: String) throws -> SafetensorsFile {
            let f = fileFor[name] ?? "model.safetensors"
            if let open = files[f] { return open }
            let path = (dir as NSString).appendingPathComponent(f)
            guard FileManager.default.fileExists(atPath: path) else { throw InteropError.file(path, "missing") }
            let opened = try SafetensorsFile(path: path)
            files[f] = opened
            return opened
        }
        let layout = ParameterLayout(config: config)
        var tensors: [String: [Float]] = [:]
        for (meta, hf) in names(config) {
            let f = try file(hf)
            guard let e = f.entries[hf] else { throw InteropError.file(f.path, "no tensor \(hf)") }
            let expected = layout.spec(named: meta)!.shape
            guard e.shape == expected else {
                throw InteropError.file(f.path, "\(hf) has shape \(e.shape); config.json implies \(expected)")
            }
            var w = try f.floats(hf)
            if meta.hasSuffix("wq.weight") { w = permuteFromHF(w, heads: config.heads, cols: config.dim) }
            if meta.hasSuffix("wk.weight") { w = permuteFromHF(w, heads: config.kvHeads, cols: config.dim) }
            tensors[meta] = w
        }
        return (config, tensors)
    }

    /// Writes config.json and model.safetensors (F32, BF16 or F16).
    public static func save(config: LlamaConfig, tensors: [String: [Float]], dtype: String = "F32", to dir: String) throws {
        guard !config.scalarHead else {
            throw InteropError.file(dir, "a reward model (scalar head) has no LlamaForCausalLM form to export")
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var out: [(name: String, shape: [Int], values: [Float])] = []
        let layout = ParameterLayout(config: config)
        for (meta, hf) in names(config) {
            guard var w = tensors[meta] else { throw InteropError.file(dir, "no weights for \(meta)") }
            if meta.hasSuffix("wq.weight") { w = permuteToHF(w, heads: config.heads, cols: config.dim) }
            if meta.hasSuffix("wk.weight") { w = permuteToHF(w, heads: config.kvHeads, cols: config.dim) }
            out.append((hf, layout.spec(named: meta)!.shape, w))
        }
        try configJSON(config, dtype: dtype).write(to: URL(fileURLWithPath: dir).appendingPathComponent("config.json"))
        try SafetensorsFile.write(out, dtype: dtype, to: (dir as NSString).appendingPathComponent("model.safetensors"))
    }
}
