import Foundation

extension JobManifest.BatchSpec {
    /// The `batch:` section: the global batch in sequences, or in tokens
    /// (a multiple of data.seq_len), or — a reward model's — in pairs; and
    /// the micro-batch. Pretraining gives it; the other kinds have their
    /// default (`KindDefaults.batch`), and PPO's batch is its rollouts.
    static func parse(in top: YAMLFields, _ kind: JobManifest.KindDefaults, seqLen: Int, rollouts: Int?) throws(ManifestError) -> Self {
        if kind.batch == .rollouts && top.has("batch") {
            throw top.error("batch", "a PPO job's batch is ppo.rollouts, and its gradient steps ppo.mini_batch")
        }
        let f = kind.batch == .required ? try top.requiredSection("batch", "sequences or tokens per step")
                                        : try top.sectionOrEmpty("batch")
        return try parse(f, kind.batch, seqLen: seqLen, rollouts: rollouts)
    }

    static func parse(_ f: YAMLFields, _ size: JobManifest.KindDefaults.BatchDefault, seqLen: Int, rollouts: Int?) throws(ManifestError) -> Self {
        let limits = JobManifest.Limits.self
        var inPairs = false
        if case .pairs = size { inPairs = true }
        try f.rejectUnknown(allowed: ["sequences", "tokens", "micro_batch"] + (inPairs ? ["pairs"] : []))
        // A reward model's batch is in pairs (the paper: 512), two sequences each.
        let pairs = inPairs ? try f.int("pairs", min: 1, max: limits.sequences / 2) : nil
        if pairs != nil && f.has("sequences") { throw f.error("pairs", "give either batch.pairs or batch.sequences, not both") }
        let sequences: Int
        switch (try f.int("sequences", min: 1, max: limits.sequences) ?? pairs.map { 2 * $0 },
                try f.int("tokens", min: 1, max: limits.sequences * limits.sequenceLength)) {
        case let (s?, nil): sequences = s
        case let (nil, t?):
            guard t % seqLen == 0 else {
                throw f.error("tokens", "must be a multiple of data.seq_len (\(seqLen)), got \(t)")
            }
            sequences = t / seqLen
            guard sequences <= limits.sequences else {
                throw f.error("tokens", "is \(sequences) sequences of data.seq_len; at most \(limits.sequences) a step")
            }
        case (nil, nil):
            switch size {
            case .sequences(let n): sequences = n
            case .pairs(let n): sequences = 2 * n
            case .rollouts: sequences = rollouts!   // a PPO job's ppo section is read before its batch
            case .required: throw f.error("sequences", "required field is missing (or give batch.tokens)")
            }
        case (_?, _?): throw f.error("tokens", "give either batch.sequences or batch.tokens, not both")
        }
        let micro = try f.int("micro_batch", min: 1, max: limits.sequences)
        return Self(sequences: sequences, microBatch: micro ?? 1, microBatchGiven: micro != nil,
                    sizeField: f.has("tokens") ? "batch.tokens" : inPairs && !f.has("sequences") ? "batch.pairs" : "batch.sequences")
    }
}
