import Foundation
import Yams

/// A training job as a team writes it in `jobs/*.yaml`, read and checked
/// completely before anything runs. Relative paths are taken from the
/// directory `herd` runs in (as torchtitan and Megatron-LM take theirs).
public struct JobManifest: Sendable, Codable, Equatable {
    /// pretrain: next-token loss on a corpus. sft: supervised fine-tuning
    /// on chat demonstrations, loss on the assistant's tokens only.
    /// reward: a reward model (scalar head) on preference comparisons.
    /// ppo: a chat policy optimised against reward models (`ppo:` section).
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case pretrain, sft, reward, ppo
        /// Jobs that start from a chat model and read dialogues.
        var finetunes: Bool { self != .pretrain }
    }

    public struct ModelSpec: Sendable, Codable, Equatable {
        /// The preset named, if any; explicit fields override its shape.
        public var preset: String?
        /// The shape; `vocabSize` 0 means "the tokenizer's vocabulary".
        public var config: LlamaConfig
        public var initStd: Double
    }

    public struct DataSpec: Sendable, Codable, Equatable {
        /// A text file or directory (tokenized in memory), or ...
        public var corpus: String
        /// ... a directory of token shards from `herd data prepare`, or
        public var shards: String?
        /// ... (sft) demonstrations as JSON lines, and optionally held-out ones.
        public var demonstrations: String?
        /// ... (reward) comparisons as JSON lines, and the prompts they
        /// answer (their safety tags pick a reward model's data mix).
        public var comparisons: String?
        public var prompts: String?
        /// Only the comparisons of these annotation batches (nil: all).
        public var batches: [String]?
        public var heldOut: String?
        public var tokenizer: String
        public var seqLen: Int
        public var validationFraction: Double
    }

    public struct BatchSpec: Sendable, Codable, Equatable {
        /// Sequences in one optimizer step (the global batch).
        public var sequences: Int
        /// Sequences in one forward/backward; the step accumulates
        /// sequences / microBatch of them.
        public var microBatch: Int
        /// Whether the manifest gave micro_batch; if not, it is each data
        /// rank's whole share (or a PPO mini-batch's), worked out per layout.
        public var microBatchGiven: Bool
        /// The field the batch size came from, for errors about its layout.
        public var sizeField: String
    }

    /// How the job is laid out on processes (each a real MPI rank when more than one).
    public struct ParallelismSpec: Sendable, Codable, Equatable {
        public var data: Int
        public var tensor: Int
        /// ZeRO-1: AdamW state sharded across the data-parallel ranks.
        public var zero1: Bool
        public var world: Int { data * tensor }
    }

    public struct OptimizerSpec: Sendable, Codable, Equatable {
        public var adamw: AdamWConfig
        public var gradClip: Double
    }

    /// What the coordinator does when a worker dies or hangs: relaunch from
    /// the latest checkpoint, waiting backoff · 2^(n-1) seconds (capped)
    /// before the n-th restart, at most `maxRestarts` times.
    public struct RestartPolicy: Sendable, Codable, Equatable {
        public var maxRestarts = 3
        public var backoffSeconds = 5.0
        public var maxBackoffSeconds = 300.0
        /// When a node is lost: relaunch on the same layout once it is back
        /// (`wait`, the default), or continue on the nodes that remain with
        /// fewer data-parallel ranks (`shrink`; the checkpoint reshards).
        public var shrinkOnNodeLoss = false
        /// Under shrink: how often a job running with fewer data-parallel
        /// ranks than it was submitted with asks whether its lost nodes are
        /// back, to grow again (0: never while it runs; still at a restart).
        public var growCheckSeconds = 30.0
        public init() {}
        public func delay(beforeRestart n: Int) -> Double {
            min(maxBackoffSeconds, backoffSeconds * pow(2, Double(max(0, n - 1))))
        }
    }

    /// How workers report and when silence means a hang: every rank writes
    /// a heartbeat every `heartbeatSeconds`; a rank whose heartbeat is older
    /// than `hangTimeoutSeconds`, or that has made no progress (a step, an
    /// evaluation, a checkpoint) for that long, is hung.
    public struct MonitorSpec: Sendable, Codable, Equatable {
        public var heartbeatSeconds = 10.0
        public var hangTimeoutSeconds = 600.0
        public init() {}
    }

    public struct EvalSpec: Sendable, Codable, Equatable {
        /// Evaluate every `interval` steps (and always at the end); 0 = only at the end.
        public var interval: Int
        /// Cap on held-out windows per evaluation; nil = the whole held-out split.
        public var maxSequences: Int?
    }

    public var file: String
    public var name: String
    public var kind: Kind
    public var seed: UInt64
    public var model: ModelSpec
    public var data: DataSpec
    public var batch: BatchSpec
    public var parallelism: ParallelismSpec
    public var optimizer: OptimizerSpec
    public var schedule: CosineSchedule
    public var steps: Int
    public var eval: EvalSpec
    public var logInterval: Int
    public var checkpoint: CheckpointSettings
    public var output: String
    public var threads: Int?
    public var restart: RestartPolicy
    public var monitor: MonitorSpec
    /// The weights the job starts from (a Herd run or checkpoint directory, or
    /// a Hugging Face directory) when its run directory has no checkpoint yet.
    public var initFrom: String?
    /// A reward model's loss and data mix.
    public var reward: RewardSpec
    /// A PPO job's settings (kind ppo only).
    public var ppo: PPOSpec?

    /// What a reward model learns: the margin table of its loss, and its
    /// objective — helpfulness or safety, which picks its data: all the
    /// comparisons of its own kind (a prompt's `safety` tag says which) plus
    /// a share of the other kind, drawn with the seed. The paper's appendix:
    /// helpfulness with as many safety comparisons again (share 1.0), safety
    /// with helpfulness making up 10% of the mix (share 1/9).
    public struct RewardSpec: Sendable, Codable, Equatable {
        public enum Objective: String, Sendable, Codable, CaseIterable { case helpfulness, safety }
        public var margin = MarginTable.small
        public var objective = Objective.helpfulness
        /// Comparisons of the other kind, as a multiple of this kind's count.
        public var otherShare = 1.0
        public init() {}
    }

    public static let tokenizers = ["char", "byte"]

    /// Command-line overrides of a few fields, applied before validation.
    public struct Overrides: Sendable {
        public var corpus: String?
        public var steps: Int?
        public var output: String?
        /// Planning only: the data need not exist on this machine.
        public var planOnly: Bool
        /// A new layout (herd resume --data N --tensor M); checkpoints reshard.
        public var data: Int?
        public var tensor: Int?
        public init(corpus: String? = nil, steps: Int? = nil, output: String? = nil, planOnly: Bool = false,
                    data: Int? = nil, tensor: Int? = nil) {
            self.corpus = corpus; self.steps = steps; self.output = output; self.planOnly = planOnly
            self.data = data; self.tensor = tensor
        }
    }

    /// Reads the manifest at `path`. Relative paths in it (and in the
    /// overrides) are taken from `base`, by default this process's current
    /// directory; every path of the result is absolute.
    public static func load(path: String, overrides: Overrides = .init(), base: String? = nil) throws(ManifestError) -> JobManifest {
        let base = base ?? FileManager.default.currentDirectoryPath
        return try parse(yaml: try YAMLFields.text(path: YAMLFields.absolute(path, base: base), what: "manifest file"), file: path,
                         overrides: overrides, base: base)
    }

    /// Limits that keep every size Herd multiplies far from Int's range:
    /// each far beyond anything trained today (the Llama 2 paper's largest
    /// is dim 8192, 80 layers, context 4096, 1024 sequences a step).
    public enum Limits {
        public static let dim = 1 << 17, layers = 4096, heads = 4096, ffnDim = 1 << 19, vocab = 1 << 22
        public static let sequenceLength = 1 << 20, sequences = 1 << 24, steps = 1 << 40, tokens = 1 << 56, ranks = 1 << 20, threads = 4096
    }

    /// A name is a directory's name (runs/NAME) and a label in the store:
    /// letters, digits, '.', '_' and '-', starting with a letter or digit.
    static func isPlainName(_ n: String) -> Bool {
        guard let first = n.unicodeScalars.first, n.count <= 100, CharacterSet.alphanumerics.contains(first), first.isASCII else { return false }
        return n.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) }
    }

    public static func parse(yaml text: String, file: String, overrides: Overrides = .init(), base: String? = nil) throws(ManifestError) -> JobManifest {
        let base = base ?? FileManager.default.currentDirectoryPath
        let top = try YAMLFields.top(yaml: text, file: file, what: "manifest", base: base)
        try top.rejectUnknown(allowed: ["name", "kind", "seed", "model", "data", "batch", "optimizer",
                                        "schedule", "steps", "train_tokens", "eval", "log_interval", "output", "threads", "parallelism", "checkpoint",
                                        "restart", "monitor", "init", "epochs", "reward", "ppo"])

        let kindText = try top.requiredString("kind", "the kind of job: \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        guard let kind = Kind(rawValue: kindText) else {
            throw top.error("kind", "unknown kind \"\(kindText)\"; expected one of: \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let name = try top.string("name") ?? ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        guard isPlainName(name) else {
            throw top.error("name", "expected a plain name (letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100): it names the run directory runs/NAME; got \"\(name.prefix(80))\"")
        }
        let seed = UInt64(try top.int("seed", min: 0) ?? 1337)

        let initFrom = try top.path("init")
        if let i = initFrom, !overrides.planOnly, !FileManager.default.fileExists(atPath: i) {
            throw top.error("init", "no such run, checkpoint or Hugging Face directory: \(i)")
        }
        if kind.finetunes && initFrom == nil {
            throw top.missing("init", "the model fine-tuning starts from: a Herd run or checkpoint directory, or a Hugging Face directory")
        }
        var modelSpec: ModelSpec
        if kind == .ppo && top.has("model") && !overrides.planOnly { throw top.error("model", "a PPO job's model is its init's (the policy it starts from)") }
        if let section = try top.section("model") {
            modelSpec = try parseModel(section)
        } else if let i = initFrom, !overrides.planOnly || FileManager.default.fileExists(atPath: i) {
            // The shape of the weights the job starts from.
            do { modelSpec = ModelSpec(preset: nil, config: try ModelFiles.config(i), initStd: 0.02) } catch {
                throw top.error("init", "cannot read the model there: \(error)")
            }
        } else {
            throw top.missing("model", "a preset or an explicit shape")
        }
        if kind == .reward { modelSpec.config.scalarHead = true }
        let data = kind == .ppo
            ? try parsePrompts(try top.requiredSection("data", "prompts"), overrides: overrides, contextLength: modelSpec.config.maxSeqLen)
            : kind.finetunes
            ? try parseDialogues(try top.requiredSection("data", kind == .sft ? "demonstrations, seq_len" : "comparisons, seq_len"),
                                 kind: kind, overrides: overrides, contextLength: modelSpec.config.maxSeqLen)
            : try parseData(try top.requiredSection("data", "corpus, tokenizer, seq_len"), overrides: overrides)
        var reward = RewardSpec()
        if let r = try top.section("reward") {
            guard kind == .reward else { throw top.error("reward", "only for kind reward") }
            try r.rejectUnknown(allowed: ["margin", "objective", "other_share"])
            let text = try r.string("margin") ?? "small"
            guard let m = MarginTable(rawValue: text) else {
                throw r.error("margin", "expected one of: small, large, none (the paper's margin tables), got \"\(text)\"")
            }
            reward.margin = m
            let o = try r.string("objective") ?? "helpfulness"
            guard let objective = RewardSpec.Objective(rawValue: o) else {
                throw r.error("objective", "expected helpfulness or safety, got \"\(o)\"")
            }
            reward.objective = objective
            reward.otherShare = try r.double("other_share", min: 0) ?? (objective == .helpfulness ? 1.0 : 1.0 / 9.0)
        }
        if kind == .reward && data.prompts == nil && reward.objective == .safety {
            throw ManifestError(file: file, field: "data.prompts", message: "a safety reward model needs the prompts file: its safety tags say which comparisons are safety ones")
        }
        var model = modelSpec
        if model.config.maxSeqLen == 0 { model.config.maxSeqLen = data.seqLen }
        if data.seqLen > model.config.maxSeqLen {
            throw ManifestError(file: file, field: "data.seq_len",
                                message: "must be at most the model's context (model.max_seq_len = \(model.config.maxSeqLen)), got \(data.seqLen)")
        }

        var parallelism = ParallelismSpec(data: 1, tensor: 1, zero1: false)
        if let p = try top.section("parallelism") {
            try p.rejectUnknown(allowed: ["data", "tensor", "zero1"])
            parallelism.data = try p.int("data", min: 1, max: Limits.ranks) ?? 1
            parallelism.tensor = try p.int("tensor", min: 1, max: Limits.heads) ?? 1
            parallelism.zero1 = try p.bool("zero1") ?? false
        }
        if let d = overrides.data { parallelism.data = d }
        if let t = overrides.tensor { parallelism.tensor = t }
        var ppo: PPOSpec?
        if let p = try top.section("ppo") {
            guard kind == .ppo else { throw top.error("ppo", "only for kind ppo") }
            ppo = try PPOSpec.parse(p, planOnly: overrides.planOnly)
        } else if kind == .ppo {
            throw top.missing("ppo", "the reward models (ppo.helpfulness, ppo.safety) and PPO's settings")
        }

        if kind == .ppo && top.has("batch") {
            throw top.error("batch", "a PPO job's batch is ppo.rollouts, and its gradient steps ppo.mini_batch")
        }
        let batchFields = kind.finetunes ? try top.section("batch") ?? top.empty("batch")
                                         : try top.requiredSection("batch", "sequences or tokens per step")
        try batchFields.rejectUnknown(allowed: ["sequences", "tokens", "micro_batch"] + (kind == .reward ? ["pairs"] : []))
        let sequences: Int
        // A reward model's batch is in pairs (the paper: 512), two sequences each.
        let pairs = kind == .reward ? try batchFields.int("pairs", min: 1, max: Limits.sequences / 2) : nil
        if pairs != nil && batchFields.has("sequences") { throw batchFields.error("pairs", "give either batch.pairs or batch.sequences, not both") }
        switch (try batchFields.int("sequences", min: 1, max: Limits.sequences) ?? pairs.map { 2 * $0 },
                try batchFields.int("tokens", min: 1, max: Limits.sequences * Limits.sequenceLength)) {
        case let (s?, nil): sequences = s
        case (nil, nil) where kind == .reward: sequences = 1024   // 512 pairs
        case let (nil, t?):
            guard t % data.seqLen == 0 else {
                throw batchFields.error("tokens", "must be a multiple of data.seq_len (\(data.seqLen)), got \(t)")
            }
            sequences = t / data.seqLen
            guard sequences <= Limits.sequences else {
                throw batchFields.error("tokens", "is \(sequences) sequences of data.seq_len; at most \(Limits.sequences) a step")
            }
        case (nil, nil) where kind == .sft: sequences = 64   // the paper's SFT batch
        case (nil, nil) where kind == .ppo: sequences = ppo!.rollouts
        case (nil, nil): throw batchFields.error("sequences", "required field is missing (or give batch.tokens)")
        case (_?, _?): throw batchFields.error("tokens", "give either batch.sequences or batch.tokens, not both")
        }
        let givenMicro = try batchFields.int("micro_batch", min: 1, max: Limits.sequences)
        let batchSpec = BatchSpec(sequences: sequences, microBatch: givenMicro ?? 1, microBatchGiven: givenMicro != nil,
                                  sizeField: batchFields.has("tokens") ? "batch.tokens" : kind == .reward && !batchFields.has("sequences") ? "batch.pairs" : "batch.sequences")

        // SFT and reward models have the paper's defaults (LR 2e-5 and 1e-5);
        // pretraining names its LR.
        let optFields = kind.finetunes ? try top.section("optimizer") ?? top.empty("optimizer")
                                       : try top.requiredSection("optimizer", "at least lr")
        try optFields.rejectUnknown(allowed: ["lr", "beta1", "beta2", "eps", "weight_decay", "grad_clip"])
        let lr = kind.finetunes ? try optFields.double("lr", min: 0) ?? (kind == .sft ? 2e-5 : kind == .ppo ? 1e-6 : 1e-5)
                                : try optFields.requiredDouble("lr", min: 0, "the peak learning rate, a number")
        var adamw = AdamWConfig()
        adamw.beta1 = try optFields.double("beta1", min: 0, max: 0.999999) ?? adamw.beta1
        adamw.beta2 = try optFields.double("beta2", min: 0, max: 0.999999) ?? adamw.beta2
        adamw.eps = try optFields.double("eps", min: 0) ?? adamw.eps
        adamw.weightDecay = try optFields.double("weight_decay", min: 0) ?? adamw.weightDecay
        let clip = try optFields.double("grad_clip", min: 0) ?? 1.0

        var steps = try top.int("steps", min: 1, max: Limits.steps) ?? 0
        if kind == .ppo {
            if top.has("epochs") { throw top.error("epochs", "a PPO job gives steps (PPO iterations; the paper ran 200–400)") }
            if steps == 0 { steps = 200 }
        } else if kind.finetunes, overrides.steps == nil, steps == 0 {
            // Epochs over the packed demonstrations (the paper: 2) or the comparisons (1).
            let epochs = try top.double("epochs", min: 0.001) ?? (kind == .sft ? 2 : 1)
            steps = overrides.planOnly ? 1 : try epochSteps(kind: kind, data: data, reward: reward, seed: seed, initFrom: initFrom!,
                                                            epochs: epochs, sequences: sequences, file: file)
        } else if top.has("epochs") && !kind.finetunes {
            throw top.error("epochs", "only for kinds sft and reward (pretraining gives steps or train_tokens)")
        }
        if let budget = try top.int("train_tokens", min: 1, max: Limits.tokens) {
            if steps > 0 { throw top.error("train_tokens", "give either steps or train_tokens, not both") }
            let perStep = sequences * data.seqLen
            steps = budget / perStep + (budget % perStep == 0 ? 0 : 1)
        }
        if let o = overrides.steps { steps = o } else if steps == 0 {
            throw top.missing("steps", "the number of optimizer steps, an integer (or train_tokens, a token budget)")
        }

        // Warmup: pretraining 2000 steps; SFT none; reward models 3% of the steps, at least 5.
        let warmup = kind == .pretrain ? 2000 : kind == .sft ? 0 : max(5, Int((0.03 * Double(steps)).rounded()))
        var schedule = CosineSchedule(peak: lr, warmupSteps: kind == .ppo ? 0 : warmup, decaySteps: steps,
                                      minRatio: kind == .ppo ? 1 : 0.1)   // PPO: a constant rate
        if let s = try top.section("schedule") {
            try s.rejectUnknown(allowed: ["warmup_steps", "decay_steps", "min_lr_ratio"])
            schedule.warmupSteps = try s.int("warmup_steps", min: 0) ?? schedule.warmupSteps
            schedule.decaySteps = try s.int("decay_steps", min: 1) ?? steps
            schedule.minRatio = try s.double("min_lr_ratio", min: 0, max: 1) ?? schedule.minRatio
        }

        var eval = EvalSpec(interval: 0, maxSequences: nil)
        if let e = try top.section("eval") {
            try e.rejectUnknown(allowed: ["interval", "max_sequences"])
            eval.interval = try e.int("interval", min: 0, max: Limits.steps) ?? 0
            eval.maxSequences = try e.int("max_sequences", min: 1, max: Limits.sequences)
        }

        var checkpoint = CheckpointSettings()
        if let c = try top.section("checkpoint") {
            try c.rejectUnknown(allowed: ["interval", "keep", "keep_every", "level", "async", "dtype"])
            checkpoint.weightDType = try c.string("dtype") ?? "fp32"
            guard ["fp32", "bf16"].contains(checkpoint.weightDType) else {
                throw c.error("dtype", "expected fp32 or bf16, got \"\(checkpoint.weightDType)\"")
            }
            checkpoint.async = try c.bool("async") ?? checkpoint.async
            checkpoint.interval = try c.int("interval", min: 0, max: Limits.steps) ?? 0
            checkpoint.keep = try c.int("keep", min: 1, max: 1_000_000) ?? checkpoint.keep
            checkpoint.keepEvery = try c.int("keep_every", min: 1, max: Limits.steps)
            checkpoint.level = try c.int("level", min: -7) ?? checkpoint.level
            if checkpoint.level > 19 { throw c.error("level", "must be a zstd level from -7 to 19, got \(checkpoint.level)") }
        }

        var restart = RestartPolicy()
        if let r = try top.section("restart") {
            try r.rejectUnknown(allowed: ["max_restarts", "backoff_seconds", "max_backoff_seconds", "on_node_loss", "grow_check_seconds"])
            let loss = try r.string("on_node_loss") ?? "wait"
            guard loss == "wait" || loss == "shrink" else {
                throw r.error("on_node_loss", "expected wait (relaunch on the same nodes once the lost one is back) or shrink (go on with fewer data-parallel ranks on the nodes that remain), got \"\(loss)\"")
            }
            restart.shrinkOnNodeLoss = loss == "shrink"
            if let g = try r.double("grow_check_seconds", min: 0, max: 86_400) {
                guard restart.shrinkOnNodeLoss else { throw r.error("grow_check_seconds", "only with on_node_loss: shrink (a job that waits for its nodes never shrinks)") }
                restart.growCheckSeconds = g
            }
            restart.maxRestarts = try r.int("max_restarts", min: 0, max: 1_000_000) ?? restart.maxRestarts
            restart.backoffSeconds = try r.double("backoff_seconds", min: 0, max: 86_400) ?? restart.backoffSeconds
            restart.maxBackoffSeconds = try r.double("max_backoff_seconds", min: 0, max: 86_400) ?? max(restart.maxBackoffSeconds, restart.backoffSeconds)
        }
        var monitor = MonitorSpec()
        if let mon = try top.section("monitor") {
            try mon.rejectUnknown(allowed: ["heartbeat_seconds", "hang_timeout_seconds"])
            monitor.heartbeatSeconds = try mon.double("heartbeat_seconds", min: 0.1, max: 86_400) ?? monitor.heartbeatSeconds
            monitor.hangTimeoutSeconds = try mon.double("hang_timeout_seconds", min: 1, max: 7 * 86_400) ?? monitor.hangTimeoutSeconds
            guard monitor.hangTimeoutSeconds >= 2 * monitor.heartbeatSeconds else {
                throw mon.error("hang_timeout_seconds", "must be at least twice monitor.heartbeat_seconds (\(monitor.heartbeatSeconds)), got \(monitor.hangTimeoutSeconds)")
            }
        }

        // A fine-tuned model is what the job is for: save it at the end
        // unless the manifest says otherwise.
        let intervalGiven = try top.section("checkpoint")?.has("interval") ?? false
        if kind.finetunes && !intervalGiven { checkpoint.interval = steps }

        var output = try top.path("output") ?? YAMLFields.absolute("runs/\(name)", base: base)
        if let o = overrides.output { output = YAMLFields.absolute(o, base: base) }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw overrides.output != nil
                ? ManifestError(file: file, field: "--output", message: "\(output) is a file, not a run directory")
                : top.error("output", "\(output) is a file, not a run directory: give another output")
        }
        var manifest = JobManifest(
            file: file, name: name, kind: kind, seed: seed, model: model, data: data,
            batch: batchSpec, parallelism: parallelism,
            optimizer: OptimizerSpec(adamw: adamw, gradClip: clip),
            schedule: schedule, steps: steps, eval: eval,
            logInterval: try top.int("log_interval", min: 1, max: Limits.steps) ?? 10, checkpoint: checkpoint,
            output: output, threads: try top.int("threads", min: 1, max: Limits.threads), restart: restart, monitor: monitor, initFrom: initFrom, reward: reward,
            ppo: ppo)
        try manifest.applyLayout(data: parallelism.data, tensor: parallelism.tensor)
        return manifest
    }

    static func parseModel(_ f: YAMLFields) throws(ManifestError) -> ModelSpec {
        try f.rejectUnknown(allowed: ["preset", "dim", "layers", "heads", "kv_heads", "ffn_dim",
                                      "vocab_size", "max_seq_len", "norm_eps", "rope_theta", "init_std"])
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
        c.dim = try f.int("dim", min: 1, max: Limits.dim) ?? c.dim
        c.layers = try f.int("layers", min: 1, max: Limits.layers) ?? c.layers
        c.heads = try f.int("heads", min: 1, max: Limits.heads) ?? c.heads
        c.kvHeads = try f.int("kv_heads", min: 1, max: Limits.heads) ?? (preset == nil ? c.heads : c.kvHeads)
        c.ffnDim = try f.int("ffn_dim", min: 1, max: Limits.ffnDim) ?? c.ffnDim
        c.vocabSize = try f.int("vocab_size", min: 1, max: Limits.vocab) ?? c.vocabSize
        c.maxSeqLen = try f.int("max_seq_len", min: 1, max: Limits.sequenceLength) ?? c.maxSeqLen
        c.normEps = Float(try f.double("norm_eps", min: 0) ?? Double(c.normEps))
        c.ropeTheta = try f.double("rope_theta", min: 1) ?? c.ropeTheta
        // Check the shape now, with the vocabulary and context stood in for
        // when they come from the data section.
        var check = c
        if check.vocabSize == 0 { check.vocabSize = 1 }
        if check.maxSeqLen == 0 { check.maxSeqLen = 1 }
        do { try check.validate() } catch { throw f.error(error.field, error.message) }
        return ModelSpec(preset: preset, config: c, initStd: try f.double("init_std", min: 0) ?? 0.02)
    }

    /// The data section of an SFT or reward job: demonstrations or
    /// comparisons (JSON lines, see ../shared/RLHF.md), optional held-out
    /// ones, the tokenizer (default: the one beside the init weights), the
    /// sequence length.
    static func parseDialogues(_ f: YAMLFields, kind: Kind, overrides: Overrides, contextLength: Int) throws(ManifestError) -> DataSpec {
        let key = kind == .sft ? "demonstrations" : "comparisons"
        try f.rejectUnknown(allowed: [key, "held_out", "tokenizer", "seq_len", "val_fraction"] + (kind == .reward ? ["prompts", "batches"] : []))
        let prompts = try f.path("prompts")
        if let p = prompts, !overrides.planOnly, !FileManager.default.fileExists(atPath: p) { throw f.error("prompts", "no such file: \(p)") }
        let demos = try f.requiredPath(key, "a JSON-lines file of \(key)")
        let heldOut = try f.path("held_out")
        for (key, path) in [(key, demos), ("held_out", heldOut ?? demos)] where !overrides.planOnly {
            if !FileManager.default.fileExists(atPath: path) { throw f.error(key, "no such file: \(path)") }
        }
        var tok = try f.string("tokenizer") ?? "from init"
        guard tok == "from init" || tokenizers.contains(tok) || tok.hasSuffix(".model") || tok.hasSuffix(".json") else {
            throw f.error("tokenizer", "expected byte, char, a tokenizer.model or tokenizer.json path, or nothing (the init's), got \"\(tok)\"")
        }
        if tok.hasSuffix(".model") || tok.hasSuffix(".json") { tok = YAMLFields.absolute(tok, base: f.base) }
        let seq = try f.int("seq_len", min: 1, max: Limits.sequenceLength) ?? min(4096, max(contextLength, 1))
        return DataSpec(corpus: "", shards: nil, demonstrations: kind == .sft ? demos : nil, comparisons: kind == .reward ? demos : nil,
                        prompts: prompts, batches: try f.strings("batches"), heldOut: heldOut, tokenizer: tok, seqLen: seq,
                        validationFraction: try f.double("val_fraction", min: 0, max: 0.9) ?? 0.05)
    }

    /// Steps for `epochs` passes over the packed demonstrations or the comparisons.
    static func epochSteps(kind: Kind, data: DataSpec, reward: RewardSpec, seed: UInt64, initFrom: String, epochs: Double,
                           sequences: Int, file: String) throws(ManifestError) -> Int {
        do {
            let windows = kind == .sft ? try DemonstrationData(data: data, initFrom: initFrom).dataset.train.count
                                       : 2 * (try ComparisonData(data: data, initFrom: initFrom, reward: reward, seed: seed).dataset.pairs.count)
            return max(1, Int((epochs * Double(windows) / Double(sequences)).rounded(.up)))
        } catch let e as ManifestError { throw e } catch {
            throw ManifestError(file: file, field: kind == .sft ? "data.demonstrations" : "data.comparisons", message: "\(error)")
        }
    }

    static func parseData(_ f: YAMLFields, overrides: Overrides) throws(ManifestError) -> DataSpec {
        try f.rejectUnknown(allowed: ["corpus", "shards", "tokenizer", "seq_len", "val_fraction"])
        if let shards = try f.path("shards"), overrides.corpus == nil {
            if f.has("corpus") { throw f.error("shards", "give either data.corpus or data.shards, not both") }
            let index = (shards as NSString).appendingPathComponent("train/index.json")
            guard overrides.planOnly || FileManager.default.fileExists(atPath: index) else {
                throw f.error("shards", "no token shards at \(shards) (expected \(index); make them with herd data prepare)")
            }
            let seq = try f.requiredInt("seq_len", min: 1, max: Limits.sequenceLength, "the training context length, an integer")
            return DataSpec(corpus: "", shards: shards, demonstrations: nil, comparisons: nil, prompts: nil, batches: nil, heldOut: nil, tokenizer: try f.string("tokenizer") ?? "from shards",
                            seqLen: seq, validationFraction: 0)
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
        let tok = try f.requiredString("tokenizer", "one of: \(tokenizers.joined(separator: ", "))")
        guard tokenizers.contains(tok) else {
            throw f.error("tokenizer", "unknown tokenizer \"\(tok)\"; expected one of: \(tokenizers.joined(separator: ", "))")
        }
        let seq = try f.requiredInt("seq_len", min: 1, max: Limits.sequenceLength, "the training context length, an integer")
        let frac = try f.double("val_fraction", min: 0, max: 0.9) ?? 0.1
        return DataSpec(corpus: path, shards: nil, demonstrations: nil, comparisons: nil, prompts: nil, batches: nil, heldOut: nil,
                        tokenizer: tok, seqLen: seq, validationFraction: frac)
    }
}
