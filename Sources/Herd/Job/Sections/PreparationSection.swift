import Foundation

// A `kind: prepare` job: a corpus tokenized into a Megatron indexed dataset
// on MPI ranks, submitted, watched and restarted like a training job. Its
// manifest is the `prepare:` section (what `herd data prepare` takes on its
// command line) and the sections about running: parallelism, restart,
// monitor, output.

extension JobManifest {
    static let preparationTopFields = ["name", "kind", "seed", "prepare", "parallelism", "restart", "monitor", "output"]

    /// The whole manifest of a prepare job. Its training sections hold
    /// nothing (`TrainingNone`): nothing reads them for this kind, and the
    /// job's steps are its units of work.
    static func parsePreparation(_ top: YAMLFields, name: String, overrides: Overrides) throws(ManifestError) -> JobManifest {
        for (k, _) in top.mapping { guard let key = k.string else { continue }; if !preparationTopFields.contains(key) && topFields.contains(key) {
            throw top.error(key, "a prepare job trains nothing: it takes \(preparationTopFields.joined(separator: ", "))")
        } }
        try top.rejectUnknown(allowed: preparationTopFields)
        if overrides.corpus != nil { throw ManifestError(file: top.file, field: "--corpus", message: "is for training jobs; a prepare job's inputs are prepare.inputs") }
        if overrides.steps != nil { throw ManifestError(file: top.file, field: "--steps", message: "is for training jobs; a prepare job runs until every unit is prepared") }
        let settings = try PreparationSettings.parse(try top.requiredSection("prepare", "the corpus to tokenize: inputs, tokenizer, out"))
        let units = try PreparationSettings.checkInputs(settings, try top.sectionOrEmpty("prepare"), planOnly: overrides.planOnly)
        let parallelism = try ParallelismSpec.parse(top.sectionOrEmpty("parallelism"), overrides: overrides)
        if parallelism.tensor > 1 || parallelism.zero > 0 || parallelism.sequenceParallel {
            throw top.error("parallelism", "a prepare job's ranks each tokenize their own units: give parallelism.data (the number of ranks) only")
        }
        let restart = try RestartPolicy.parse(top.sectionOrEmpty("restart"))
        if restart.shrinkOnNodeLoss {
            throw top.error("restart.on_node_loss", "shrink is for training jobs; a prepare job waits for its nodes (its units are dealt to the ranks it was planned with)")
        }
        let none = TrainingNone.self
        var m = JobManifest(
            file: top.file, name: name, kind: .prepare, seed: UInt64(try top.int("seed", min: 0) ?? 1337), model: none.model,
            data: none.data(tokenizer: settings.tokenizer), batch: none.batch, parallelism: parallelism, optimizer: none.optimizer,
            schedule: none.schedule, steps: units, eval: none.eval, logInterval: 1, checkpoint: CheckpointSettings(),
            output: try parseOutput(top, name: name, overrides: overrides), threads: nil, restart: restart,
            monitor: try MonitorSpec.parse(top.sectionOrEmpty("monitor")), initFrom: nil, reward: RewardSpec(), ppo: nil)
        m.preparation = settings
        return m
    }

    /// The training sections of a job that trains nothing (a prepare job):
    /// an empty model, no data to sample, no batch, no schedule.
    enum TrainingNone {
        static let model = ModelSpec(preset: nil, config: LlamaConfig(dim: 0, layers: 0, heads: 0, kvHeads: 0, ffnDim: 0, vocabSize: 0, maxSeqLen: 0),
                                     initStd: 0)
        static func data(tokenizer: String) -> DataSpec {
            DataSpec(corpus: "", shards: nil, demonstrations: nil, comparisons: nil, prompts: nil, batches: nil, heldOut: nil,
                     tokenizer: tokenizer, seqLen: 0, validationFraction: 0)
        }
        static let batch = BatchSpec(sequences: 0, microBatch: 0, microBatchGiven: false, sizeField: "prepare")
        static let optimizer = OptimizerSpec(adamw: AdamWConfig(), gradClip: 0)
        static let schedule = CosineSchedule(peak: 0, warmupSteps: 0, decaySteps: 0, minRatio: 1)
        static let eval = EvalSpec(interval: 0, maxSequences: nil)
    }
}

extension PreparationSettings {
    static let fields = ["inputs", "tokenizer", "out", "text_key", "on_bad_line", "unit_bytes", "part_bytes", "dedup"]

    /// The `prepare:` section: `herd data prepare`'s arguments, paths taken from the manifest's base.
    static func parse(_ f: YAMLFields) throws(ManifestError) -> PreparationSettings {
        try f.rejectUnknown(allowed: fields)
        guard let inputs = try f.strings("inputs"), !inputs.isEmpty else {
            throw f.missing("inputs", "files, directories or globs of text and JSON lines, .gz or .zst")
        }
        let tokenizer = try f.requiredString("tokenizer", "a SentencePiece tokenizer.model (Llama 2's), or byte, or char")
        var s = PreparationSettings(inputs: inputs.map { YAMLFields.absolute($0, base: f.base) },
                                    tokenizer: ["byte", "char"].contains(tokenizer) ? tokenizer : YAMLFields.absolute(tokenizer, base: f.base),
                                    out: try f.requiredPath("out", "the directory the dataset is written to"))
        s.textKey = try f.string("text_key") ?? s.textKey
        if s.textKey.isEmpty { throw f.error("text_key", "expected a field name") }
        if let policy = try f.string("on_bad_line") {
            guard let p = BadLinePolicy(rawValue: policy) else { throw f.error("on_bad_line", "expected fail or skip, got \"\(policy)\"") }
            s.onBadLine = p
        }
        s.unitBytes = try f.int("unit_bytes", min: 1 << 10, max: 1 << 50) ?? s.unitBytes
        s.partBytes = try f.int("part_bytes", min: 1 << 10, max: 1 << 50) ?? s.partBytes
        s.deduplicate = try f.bool("dedup") ?? s.deduplicate
        return s
    }

    /// The number of units the inputs make (0 when only planning and they
    /// are not here), and that the tokenizer file loads and `out` holds no
    /// other dataset: checked before any rank starts.
    static func checkInputs(_ s: PreparationSettings, _ f: YAMLFields, planOnly: Bool) throws(ManifestError) -> Int {
        if planOnly { return (try? PreparationPlan.units(s).count) ?? 0 }
        let units: Int
        do { units = try PreparationPlan.units(s).count } catch { throw f.error("inputs", "\(error)") }
        if !["byte", "char"].contains(s.tokenizer) {
            do { _ = try SentencePieceTokenizer(path: s.tokenizer) } catch {
                throw f.error("tokenizer", "\(s.tokenizer) is not a SentencePiece tokenizer.model: \(error)")
            }
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: s.out, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw f.error("out", "\(s.out) is a file, not a directory")
        }
        if FileManager.default.fileExists(atPath: s.manifestPath) {
            guard let done = try? PreparedDataset.read(dir: s.out), done.settings == s else {
                throw f.error("out", "\(s.out) already holds a dataset prepared with other settings; choose another out")
            }
        }
        return units
    }
}
