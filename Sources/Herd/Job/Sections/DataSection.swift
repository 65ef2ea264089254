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
        try f.rejectUnknown(allowed: ["corpus", "shards", "mix", "tokenizer", "seq_len", "val_fraction"])
        let maxSeqLen = JobManifest.Limits.sequenceLength
        func prepared(_ g: YAMLFields, _ key: String) throws(ManifestError) -> String? {
            guard let path = try g.path(key) else { return nil }
            guard overrides.planOnly || PreparedData.locate(path) != nil else {
                throw g.error(key, "no prepared dataset at \(path): expected \(PreparedData.expected(path)); make one with herd data prepare")
            }
            return path
        }
        if f.has("mix"), overrides.corpus == nil {
            if f.has("corpus") || f.has("shards") { throw f.error("mix", "give one of data.corpus, data.shards and data.mix") }
            var entries: [JobManifest.MixEntry] = []
            for g in try f.sections("mix") ?? [] {
                try g.rejectUnknown(allowed: ["shards", "weight"])
                let w = try g.requiredDouble("weight", min: 0, "its share of the sequences, a number > 0")
                guard w > 0, w.isFinite else { throw g.error("weight", "expected a finite number > 0, got \(w)") }
                guard let shards = try prepared(g, "shards") else { throw g.missing("shards", "a prepared dataset") }
                entries.append(.init(shards: shards, weight: w))
            }
            guard !entries.isEmpty, entries.count <= 1024 else { throw f.error("mix", "expected 1 to 1024 datasets, got \(entries.count)") }
            let seq = try f.requiredInt("seq_len", min: 1, max: maxSeqLen, "the training context length, an integer")
            let frac = try f.double("val_fraction", min: 0, max: 0.9) ?? kind.validationFraction
            return Self(corpus: "", shards: nil, demonstrations: nil, comparisons: nil, prompts: nil, batches: nil, heldOut: nil,
                        tokenizer: try f.string("tokenizer") ?? "from shards", seqLen: seq, validationFraction: frac, mix: entries)
        }
        if let shards = try prepared(f, "shards"), overrides.corpus == nil {
            if f.has("corpus") { throw f.error("shards", "give either data.corpus or data.shards, not both") }
            let seq = try f.requiredInt("seq_len", min: 1, max: maxSeqLen, "the training context length, an integer")
            // An indexed dataset is split here; Herd's earlier token shards hold their own split.
            let frac = try f.double("val_fraction", min: 0, max: 0.9) ?? kind.validationFraction
            return Self(corpus: "", shards: shards, demonstrations: nil, comparisons: nil, prompts: nil, batches: nil, heldOut: nil,
                        tokenizer: try f.string("tokenizer") ?? "from shards", seqLen: seq, validationFraction: frac)
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
