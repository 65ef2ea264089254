import Foundation

extension JobManifest.ModelSpec {
    static let fields = ["preset", "dim", "layers", "heads", "kv_heads", "ffn_dim",
                         "vocab_size", "max_seq_len", "norm_eps", "rope_theta", "init_std"]

    /// The job's model: its `model:` section, or else the shape of the
    /// weights it starts from (`init`).
    static func parse(in top: YAMLFields, initFrom: String?, _ kind: JobManifest.KindDefaults, planOnly: Bool) throws(ManifestError) -> Self {
        // A pipeline's plan stands a preset in for a PPO policy whose checkpoint is not on this machine.
        if kind.modelIsInit && top.has("model") && !planOnly { throw top.error("model", "a PPO job's model is its init's (the policy it starts from)") }
        var spec: Self
        if let section = try top.section("model") {
            spec = try parse(section)
        } else if let i = initFrom, !planOnly || FileManager.default.fileExists(atPath: i) {
            // The shape of the weights the job starts from.
            do { spec = Self(preset: nil, config: try ModelFiles.config(i), initStd: 0.02) } catch {
                throw top.error("init", "cannot read the model there: \(error)")
            }
        } else {
            throw top.missing("model", "a preset or an explicit shape")
        }
        if kind.scalarHead { spec.config.scalarHead = true }
        return spec
    }

    /// The `model:` section: a preset, an explicit shape, or a preset with
    /// fields of its shape overridden.
    static func parse(_ f: YAMLFields) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: fields)
        let preset = try f.string("preset")
        var c: LlamaConfig
        if let preset {
            guard let p = LlamaConfig.presets[preset] else {
                throw f.error("preset", "unknown preset \"\(preset)\"; expected one of: \(LlamaConfig.presets.keys.sorted().joined(separator: ", "))")
            }
            c = p
        } else {
            for key in ["dim", "layers", "heads", "ffn_dim"] where !f.has(key) {
                throw f.error(key, "required field is missing (a positive integer), or name a preset")
            }
            c = LlamaConfig(dim: 0, layers: 0, heads: 0, kvHeads: 0, ffnDim: 0, vocabSize: 0, maxSeqLen: 0)
        }
        let limits = JobManifest.Limits.self
        c.dim = try f.int("dim", min: 1, max: limits.dim) ?? c.dim
        c.layers = try f.int("layers", min: 1, max: limits.layers) ?? c.layers
        c.heads = try f.int("heads", min: 1, max: limits.heads) ?? c.heads
        c.kvHeads = try f.int("kv_heads", min: 1, max: limits.heads) ?? (preset == nil ? c.heads : c.kvHeads)
        c.ffnDim = try f.int("ffn_dim", min: 1, max: limits.ffnDim) ?? c.ffnDim
        c.vocabSize = try f.int("vocab_size", min: 1, max: limits.vocab) ?? c.vocabSize
        c.maxSeqLen = try f.int("max_seq_len", min: 1, max: limits.sequenceLength) ?? c.maxSeqLen
        c.normEps = Float(try f.double("norm_eps", min: 0) ?? Double(c.normEps))
        c.ropeTheta = try f.double("rope_theta", min: 1) ?? c.ropeTheta
        // Check the shape now, with the vocabulary and context stood in for
        // when they come from the data section.
        var check = c
        if check.vocabSize == 0 { check.vocabSize = 1 }
        if check.maxSeqLen == 0 { check.maxSeqLen = 1 }
        do { try check.validate() } catch { throw f.error(error.field, error.message) }
        return Self(preset: preset, config: c, initStd: try f.double("init_std", min: 0) ?? 0.02)
    }
}
