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
    /// prepare: a corpus tokenized into a dataset (`prepare:` section); it
    /// trains nothing, and its steps are its units of work.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case pretrain, sft, reward, ppo, prepare
        /// Jobs that start from a chat model and read dialogues.
        var finetunes: Bool { self == .sft || self == .reward || self == .ppo }
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
        /// ... or several prepared datasets sampled by weight.
        public var mix: [MixEntry]? = nil
    }

    /// One dataset of `data.mix` and its weight (its share of the sequences,
    /// once the weights are normalised).
    public struct MixEntry: Sendable, Codable, Equatable {
        public var shards: String
        public var weight: Double
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
        /// The ZeRO stage across the data-parallel ranks: 0 replicates
        /// everything; 1 shards the AdamW state; 2 also the gradients; 3 also
        /// the parameters (FSDP), gathered layer by layer when used.
        public var zero: Int
        /// Sequence parallelism inside each tensor group: the residual stream
        /// and norms split by rows (no effect at tensor 1).
        public var sequenceParallel = false
        public var world: Int { data * tensor }
        /// Whether each data rank keeps only its part of the AdamW state (stage ≥ 1).
        public var shardsOptimizer: Bool { zero >= 1 }

        public init(data: Int, tensor: Int, zero: Int) {
            self.data = data; self.tensor = tensor; self.zero = zero
        }

        // A job resolved before stages existed recorded `zero1: Bool`.
        private enum CodingKeys: String, CodingKey { case data, tensor, zero, zero1, sequenceParallel }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            data = try c.decode(Int.self, forKey: .data)
            tensor = try c.decode(Int.self, forKey: .tensor)
            zero = try c.decodeIfPresent(Int.self, forKey: .zero)
                ?? ((try c.decodeIfPresent(Bool.self, forKey: .zero1)) == true ? 1 : 0)
            sequenceParallel = try c.decodeIfPresent(Bool.self, forKey: .sequenceParallel) ?? false
        }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(data, forKey: .data)
            try c.encode(tensor, forKey: .tensor)
            try c.encode(zero, forKey: .zero)
            try c.encode(sequenceParallel, forKey: .sequenceParallel)
        }
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
    /// A prepare job's corpus, tokenizer and output (kind prepare only).
    public var preparation: PreparationSettings? = nil
    /// What the forward pass keeps for backward (`activation_checkpoint`).
    public var activationCheckpoint: ActivationCheckpoint = .none
    /// fp32, or bf16 mixed precision (`precision`).
    public var precision: Precision = .fp32

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

    static let topFields = ["name", "kind", "seed", "model", "data", "batch", "optimizer", "schedule", "steps", "train_tokens", "eval",
                            "log_interval", "output", "threads", "parallelism", "checkpoint", "restart", "monitor", "init", "epochs", "reward", "ppo", "prepare", "activation_checkpoint", "precision"]

    /// Each section parses itself (Sections/), with the defaults of the
    /// job's kind (`KindDefaults`); `validate` then checks the rules that
    /// span sections. Sections are read in this order, which is the order
    /// a manifest's mistakes are reported in.
    public static func parse(yaml text: String, file: String, overrides: Overrides = .init(), base: String? = nil) throws(ManifestError) -> JobManifest {
        let top = try YAMLFields.top(yaml: text, file: file, what: "manifest", base: base ?? FileManager.default.currentDirectoryPath)
        try top.rejectUnknown(allowed: topFields)
        let kind = try Kind.parse(top)
        let name = try parseName(top)
        if kind == .prepare { return try parsePreparation(top, name: name, overrides: overrides) }
        let defaults = kind.defaults
        if top.has("prepare") { throw top.error("prepare", "only a prepare job (kind: prepare) takes a prepare section") }
        let seed = UInt64(try top.int("seed", min: 0) ?? 1337)
        let initFrom = try parseInit(top, defaults, planOnly: overrides.planOnly)

        var model = try ModelSpec.parse(in: top, initFrom: initFrom, defaults, planOnly: overrides.planOnly)
        let data = try DataSpec.parse(in: top, defaults, overrides: overrides, contextLength: model.config.maxSeqLen)
        // A shape that leaves out its context takes the data's.
        if model.config.maxSeqLen == 0 { model.config.maxSeqLen = data.seqLen }
        let reward = try RewardSpec.parse(in: top, defaults)
        let parallelism = try ParallelismSpec.parse(top.sectionOrEmpty("parallelism"), overrides: overrides)
        let ppo = try PPOSpec.parse(in: top, defaults, planOnly: overrides.planOnly)
        let batch = try BatchSpec.parse(in: top, defaults, seqLen: data.seqLen, rollouts: ppo?.rollouts)
        let (optimizer, lr) = try OptimizerSpec.parse(in: top, defaults)
        let steps = try parseSteps(in: top, defaults, overrides: overrides, data: data, reward: reward, seed: seed, initFrom: initFrom,
                                   sequences: batch.sequences)
        let schedule = try CosineSchedule.parse(top.sectionOrEmpty("schedule"), peak: lr, steps: steps, defaults)
        let eval = try EvalSpec.parse(top.sectionOrEmpty("eval"))
        let checkpoint = try CheckpointSettings.parse(top.sectionOrEmpty("checkpoint"), endStep: defaults.checkpointsEnd ? steps : nil)
        let restart = try RestartPolicy.parse(top.sectionOrEmpty("restart"))
        let monitor = try MonitorSpec.parse(top.sectionOrEmpty("monitor"))
        let output = try parseOutput(top, name: name, overrides: overrides)

        var manifest = JobManifest(
            file: file, name: name, kind: kind, seed: seed, model: model, data: data, batch: batch, parallelism: parallelism,
            optimizer: optimizer, schedule: schedule, steps: steps, eval: eval,
            logInterval: try top.int("log_interval", min: 1, max: Limits.steps) ?? 10, checkpoint: checkpoint, output: output,
            threads: try top.int("threads", min: 1, max: Limits.threads), restart: restart, monitor: monitor, initFrom: initFrom,
            reward: reward, ppo: ppo)
        manifest.activationCheckpoint = try parseActivationCheckpoint(top)
        manifest.precision = try parsePrecision(top)
        try manifest.validate()
        return manifest
    }
}
