import Foundation

extension JobManifest.DataSpec {
    /// The `data:` section, which every job has, in the form its kind
    /// reads. `contextLength` is the model's (0 when its shape leaves it to
    /// the data): a fine-tune's sequences default to it.
    static func parse(in top: YAMLFields, _ kind: JobManifest.KindDefaults, overrides: JobManifest.Overrides,
                      contextLength: Int) throws(ManifestError) -> Self {
        let f = try top.requiredSection("data", kind.data.fields)
        switch kind.data {
        case .corpus: return try parseCorpus(f, kind, overrides: overrides)
        case .demonstrations, .comparisons: return try parseDialogues(f, kind, overrides: overrides, contextLength: contextLength)
        case .prompts: return try parsePrompts(f, kind, overrides: overrides, contextLength: contextLength)
        }
    }

    /// Pretraining's data: a text file or directory with its tokenizer, or
    /// the token shards of `herd data prepare` (which hold their own split).
    static func parseCorpus(_ f: YAMLFields, _ kind: JobManifest.KindDefaults, overrides: JobManifest.Overrides) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: ["corpus", "shards", "tokenizer", "seq_len", "val_fraction"])
        let maxSeqLen = JobManifest.Limits.sequenceLength
        if let shards = try f.path("shards"), overrides.corpus == nil {
            if f.has("corpus") { throw f.error("shards", "give either data.corpus or data.shards, not both") }
            let index = (shards as NSString).appendingPathComponent("train/index.json")
            guard overrides.planOnly || FileManager.default.fileExists(atPath: index) else {
                throw f.error("shards", "no token shards at \(shards) (expected \(index); make them with herd data prepare)")
            }
            let seq = try f.requiredInt("seq_len", min: 1, max: maxSeqLen, "the training context length, an integer")
            return Self(corpus: "", shards: shards, demonstrations: nil, comparisons: nil, prompts: nil, batches: nil, heldOut: nil,
                        tokenizer: try f.string("tokenizer") ?? "from shards", seqLen: seq, validationFraction: 0)
        }
        var corpus = try f.string("corpus") ?? ""
        if let o = overrides.corpus { corpus = o } else if corpus.isEmpty {
            throw f.missing("corpus", "a text file or a directory of text files, or data.shards")
        }
        let path = YAMLFields.absolute(corpus, base: f.base)
        var isDirectory: ObjCBool = false
        if !overrides.planOnly && !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            throw f.error("corpus", "no such file or directory: \(path) (relative paths are taken from \(f.base))")
        }
        if !overrides.planOnly && !isDirectory.boolValue,
           let type = try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType, type != .typeRegular {
            throw f.error("corpus", "\(path) is not a regular file or a directory (a device or a pipe never ends)")
        }
        let tokenizers = JobManifest.tokenizers
        let tok = try f.requiredString("tokenizer", "one of: \(tokenizers.joined(separator: ", "))")
        guard tokenizers.contains(tok) else {
            throw f.error("tokenizer", "unknown tokenizer \"\(tok)\"; expected one of: \(tokenizers.joined(separator: ", "))")
        }
        let seq = try f.requiredInt("seq_len", min: 1, max: maxSeqLen, "the training context length, an integer")
        let frac = try f.double("val_fraction", min: 0, max: 0.9) ?? kind.validationFraction
        return Self(corpus: path, shards: nil, demonstrations: nil, comparisons: nil, prompts: nil, batches: nil, heldOut: nil,
                    tokenizer: tok, seqLen: seq, validationFraction: frac)
    }

    /// The data of an SFT or reward job: demonstrations or comparisons
    /// (JSON lines, see ../shared/RLHF.md), optional held-out ones, the
    /// tokenizer (default: the one beside the init weights), the sequence
    /// length (default: the model's context, at most 4096).
    static func parseDialogues(_ f: YAMLFields, _ kind: JobManifest.KindDefaults, overrides: JobManifest.Overrides,
                               contextLength: Int) throws(ManifestError) -> Self {
        let key = kind.data.rawValue
        // A comparison's prompt has a safety tag, which picks a reward model's data mix.
        let comparisons = kind.data == .comparisons
        try f.rejectUnknown(allowed: [key, "held_out", "tokenizer", "seq_len", "val_fraction"] + (comparisons ? ["prompts", "batches"] : []))
        let prompts = try f.path("prompts")
        if let p = prompts, !overrides.planOnly, !FileManager.default.fileExists(atPath: p) { throw f.error("prompts", "no such file: \(p)") }
        let dialogues = try f.requiredPath(key, "a JSON-lines file of \(key)")
        let heldOut = try f.path("held_out")
        for (key, path) in [(key, dialogues), ("held_out", heldOut ?? dialogues)] where !overrides.planOnly {
            if !FileManager.default.fileExists(atPath: path) { throw f.error(key, "no such file: \(path)") }
        }
        var tok = try f.string("tokenizer") ?? "from init"
        guard tok == "from init" || JobManifest.tokenizers.contains(tok) || tok.hasSuffix(".model") || tok.hasSuffix(".json") else {
            throw f.error("tokenizer", "expected byte, char, a tokenizer.model or tokenizer.json path, or nothing (the init's), got \"\(tok)\"")
        }
        if tok.hasSuffix(".model") || tok.hasSuffix(".json") { tok = YAMLFields.absolute(tok, base: f.base) }
        let seq = try f.int("seq_len", min: 1, max: JobManifest.Limits.sequenceLength) ?? min(4096, max(contextLength, 1))
        return Self(corpus: "", shards: nil, demonstrations: comparisons ? nil : dialogues, comparisons: comparisons ? dialogues : nil,
                    prompts: prompts, batches: try f.strings("batches"), heldOut: heldOut, tokenizer: tok, seqLen: seq,
                    validationFraction: try f.double("val_fraction", min: 0, max: 0.9) ?? kind.validationFraction)
    }

    /// The data of a PPO job: the prompts rollouts answer (JSON lines of
    /// prompt records; their `safety` tags pick the reward). Rollouts fill
    /// the model's context.
    static func parsePrompts(_ f: YAMLFields, _ kind: JobManifest.KindDefaults, overrides: JobManifest.Overrides,
                             contextLength: Int) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: ["prompts", "tokenizer"])
        let prompts = try f.requiredPath("prompts", "a JSON-lines file of prompts (id, dialogue, optional safety tag)")
        if !overrides.planOnly && !FileManager.default.fileExists(atPath: prompts) { throw f.error("prompts", "no such file: \(prompts)") }
        return Self(corpus: "", shards: nil, demonstrations: nil, comparisons: nil, prompts: prompts, batches: nil, heldOut: nil,
                    tokenizer: try f.string("tokenizer") ?? "from init", seqLen: max(contextLength, 1), validationFraction: kind.validationFraction)
    }
}

extension JobManifest.KindDefaults.DataForm {
    /// What a `data:` section of this form gives, for the error when it is missing.
    var fields: String {
        switch self {
        case .corpus: return "corpus, tokenizer, seq_len"
        case .demonstrations: return "demonstrations, seq_len"
        case .comparisons: return "comparisons, seq_len"
        case .prompts: return "prompts"
        }
    }
}
