import ArgumentParser

// The options of the `herd rlhf` steps a pipeline runs: the command line
// parses into these, and the pipeline builds them (see StageCommand). The
// inits for code set every property, defaulted ones too (a value built in
// code, unlike a parsed one, cannot read a declaration's default), on a
// copy assigned to self at the end: inside an init, `self.x = v` on a
// wrapped property re-creates the wrapper from v as a declaration would,
// which ArgumentParser then refuses to read.

/// The annotator a step talks to: its argv after `--` (never a shell
/// string) and how long to wait for each answer.
public struct AnnotatorOptions: ParsableArguments, Sendable {
    public static let defaultTimeout = 60.0
    @Option(help: "Seconds to wait for each answer of the annotator.") public var timeout: Double = defaultTimeout
    @Argument(parsing: .postTerminator, help: "The annotator command, after --: an argv, never a shell string.") public var words: [String] = []
    public init() {}
    /// A value built in code sets every property: ArgumentParser keeps
    /// defaults in the declaration until it parses. (A factory, not an init:
    /// Swift 6.2's ownership checker trips on an init that delegates here.)
    public static func command(_ words: [String], timeout: Double = defaultTimeout) -> AnnotatorOptions {
        var o = AnnotatorOptions()
        o.words = words
        o.timeout = timeout
        return o
    }
}

public struct AnnotateOptions: StageCommand {
    public static let subcommand = ["rlhf", "annotate"]
    @Option(help: "The policy: a run or checkpoint directory, or a Hugging Face directory.") public var policy: String
    @Option(help: "Prompts, JSON lines ({id, dialogue, safety}).") public var prompts: String
    @Option(help: "The comparison pool to append to (JSON lines).") public var pool: String
    @Option(help: "This annotation batch's name (a rerun continues it).") public var batch: String
    @Option(help: "The two sampling temperatures, comma-separated.") public var temperatures: String = "0.7,1.0"
    @Option(help: "Longest answer, in tokens.") public var maxNewTokens: Int = 64
    @Option(help: "Ranks the policy is split across by tensor parallelism (started with mpirun on this machine).") public var tensor: Int = 1
    @Option(help: "Sampling seed.") public var seed: UInt64 = 1
    @OptionGroup public var annotator: AnnotatorOptions
    public init() {}
    public init(policy: String, prompts: String, pool: String, batch: String, temperatures: (Double, Double), maxNewTokens: Int,
                seed: UInt64, annotator: [String], tensor: Int = 1) {
        var o = Self()
        o.tensor = tensor
        o.policy = policy; o.prompts = prompts; o.pool = pool; o.batch = batch
        o.temperatures = "\(temperatures.0),\(temperatures.1)"; o.maxNewTokens = maxNewTokens; o.seed = seed
        o.annotator = AnnotatorOptions.command(annotator)
        self = o
    }
}

public struct RMAccuracyOptions: StageCommand {
    public static let subcommand = ["rlhf", "rm-accuracy"]
    @Option(help: "The helpfulness reward model.") public var helpfulness: String
    @Option(help: "The safety reward model.") public var safety: String
    @Option(help: "The comparison pool.") public var pool: String
    @Option(help: "The batch to score (e.g. V2: pairs of the current policy's answers the models were not trained on).") public var batch: String
    @Option(help: "The prompts, for their safety tags.") public var prompts: String
    @Option(help: "Where to write the result (JSON).") public var out: String
    public init() {}
    public init(helpfulness: String, safety: String, pool: String, batch: String, prompts: String, out: String) {
        var o = Self()
        o.helpfulness = helpfulness; o.safety = safety; o.pool = pool; o.batch = batch; o.prompts = prompts; o.out = out
        self = o
    }
}

public struct RMHealthOptions: StageCommand {
    public static let subcommand = ["rlhf", "rm-health"]
    @Option(help: "The helpfulness reward model's run.") public var helpfulness: String
    @Option(help: "The safety reward model's run.") public var safety: String
    @Option(help: "The previous models' accuracy on this batch (herd rlhf rm-accuracy's JSON), from the second iteration.") public var onPolicy: String?
    @Option(help: "Least held-out accuracy.") public var heldOut: Double = 0.55
    @Option(help: "Least held-out accuracy on the clear degrees (significantly better, better).") public var heldOutClear: Double = 0.6
    @Option(help: "Least on-policy accuracy.") public var onPolicyMin: Double = 0.5
    @Option(help: "Least on-policy accuracy on the clear degrees.") public var onPolicyClear: Double = 0.55
    @Option(help: "A probe's prompts (herd rlhf world's probe-prompts.jsonl).") public var probePrompts: String?
    @Option(help: "A probe's comparisons, one batch per task family (probe-pool.jsonl).") public var probePool: String?
    @Flag(help: "Below a threshold, let the annotator choose this iteration's samples instead of stopping.") public var fallBackToAnnotator = false
    @Option(help: "Where to write the result (JSON).") public var out: String
    public init() {}
    public init(helpfulness: String, safety: String, onPolicy: String?, rule: PipelineManifest.HealthRule, fallBack: Bool, out: String) {
        var o = Self()
        o.helpfulness = helpfulness; o.safety = safety; o.onPolicy = onPolicy
        o.heldOut = rule.heldOut; o.heldOutClear = rule.heldOutClear; o.onPolicyMin = rule.onPolicy; o.onPolicyClear = rule.onPolicyClear
        o.probePrompts = rule.probePrompts; o.probePool = rule.probePool
        o.fallBackToAnnotator = fallBack; o.out = out
        self = o
    }
    public var thresholds: RewardModelHealth.Thresholds {
        .init(heldOut: heldOut, heldOutClear: heldOutClear, onPolicy: onPolicyMin, onPolicyClear: onPolicyClear)
    }
}

public struct SampleOptions: StageCommand {
    public static let subcommand = ["rlhf", "sample"]
    @Option(help: "The policy (a run or checkpoint directory).") public var policy: String
    @Option(help: "The helpfulness reward model.") public var helpfulness: String
    @Option(help: "The safety reward model.") public var safety: String
    @Option(help: "Prompts, JSON lines ({id, dialogue, safety}).") public var prompts: String
    @Option(help: "The bag to write (JSON lines; a rerun continues it).") public var bag: String
    @Option(help: "The iteration's name, recorded with every sample.") public var iteration: String
    @Option(help: "Samples per prompt.") public var k: Int = 4
    @Option(help: "Sampling temperature.") public var temperature: Double = 1.0
    @Option(help: "Longest answer, in tokens.") public var maxNewTokens: Int = 64
    @Option(help: "Sampling seed.") public var seed: UInt64 = 1
    @Option(help: "Prompts per generation batch (K sequences each).") public var chunk: Int = 8
    @Option(help: "MPI ranks sharing the prompts (started with mpirun on this machine).") public var ranks: Int = 1
    @Option(help: "Ranks holding one copy of the models, split by tensor parallelism (divides --ranks).") public var tensor: Int = 1
    public init() {}
    public init(policy: String, helpfulness: String, safety: String, prompts: String, bag: String, iteration: String,
                k: Int, temperature: Double, maxNewTokens: Int, seed: UInt64, chunk: Int, ranks: Int, tensor: Int = 1) {
        var o = Self()
        o.policy = policy; o.helpfulness = helpfulness; o.safety = safety; o.prompts = prompts; o.bag = bag
        o.iteration = iteration; o.k = k; o.temperature = temperature; o.maxNewTokens = maxNewTokens
        o.seed = seed; o.chunk = chunk; o.ranks = ranks; o.tensor = tensor
        self = o
    }
}

public struct SelectOptions: StageCommand {
    public static let subcommand = ["rlhf", "select"]
    @Option(help: "The prompts the bags answer.") public var prompts: String
    @Option(help: "This iteration's bag.") public var bag: String
    @Option(help: "An earlier iteration's bag (repeatable); pooled from --pool-from on.") public var earlierBag: [String] = []
    @Option(help: "This iteration (V1, V2, ...).") public var iteration: String
    @Option(help: "The first iteration whose selection pools every bag (the paper: 4).") public var poolFrom: Int = 4
    @Option(help: "Where to write the selections (demonstrations, JSON lines).") public var out: String
    @Flag(help: "The control arm: the annotator (after --) rates every sample and its ratings choose, not the reward models.") public var byAnnotator = false
    @Option(help: "Earlier demonstrations (JSON lines) to write after the selections, for the fine-tuning to mix in.") public var demonstrations: String?
    @Option(help: "How many of --demonstrations to draw (seeded by the iteration).") public var demonstrationCount: Int = 0
    @OptionGroup public var annotator: AnnotatorOptions
    public init() {}
    public init(prompts: String, bag: String, earlierBags: [String], iteration: String, poolFrom: Int, out: String, byAnnotator: [String]?,
                demonstrations: (file: String, count: Int)? = nil) {
        var o = Self()
        o.demonstrations = demonstrations?.file
        o.demonstrationCount = demonstrations?.count ?? 0
        o.prompts = prompts; o.bag = bag; o.earlierBag = earlierBags; o.iteration = iteration
        o.poolFrom = poolFrom; o.out = out
        o.byAnnotator = byAnnotator != nil
        o.annotator = AnnotatorOptions.command(byAnnotator ?? [])
        self = o
    }
}

public struct EvaluateOptions: StageCommand {
    public static let subcommand = ["rlhf", "evaluate"]
    @Option(help: "Held-out prompts.") public var prompts: String
    @Option(help: "Where to write the results (JSON).") public var out: String
    @Option(help: "Longest answer, in tokens.") public var maxNewTokens: Int = 64
    @Option(help: "Seed of the T=1 samples.") public var seed: UInt64 = 1
    @Option(help: "Held-out dialogues under a standing instruction: the share of turns that keep it, per turn (Ghost Attention's measure).")
    public var dialogues: String?
    @Option(help: "NAME=PATH of a policy to evaluate (repeatable).") public var policy: [String]
    @Option(help: "Ranks each policy is split across by tensor parallelism (started with mpirun on this machine).") public var tensor: Int = 1
    @Option(help: "NAME=PATH: the reference policy (e.g. the SFT model) NAME is compared with.") public var reference: [String] = []
    @Option(help: "Answers sampled at T = 1 per prompt (a prompt's share right is their mean).") public var samples: Int = 1
    @OptionGroup public var annotator: AnnotatorOptions
    public init() {}
    /// `policies`: (name, path to evaluate, the reference it is compared with).
    public init(prompts: String, out: String, maxNewTokens: Int, seed: UInt64, dialogues: String?,
                policies: [(name: String, path: String, reference: String)], annotator: [String], tensor: Int = 1, samples: Int = 1) {
        var o = Self()
        o.tensor = tensor
        o.samples = samples
        o.prompts = prompts; o.out = out; o.maxNewTokens = maxNewTokens; o.seed = seed; o.dialogues = dialogues
        o.policy = policies.map { "\($0.name)=\($0.path)" }
        o.reference = policies.map { "\($0.name)=\($0.reference)" }
        o.annotator = AnnotatorOptions.command(annotator)
        self = o
    }
}

public struct GAttOptions: StageCommand {
    public static let subcommand = ["rlhf", "gatt"]
    @Option(help: "The latest policy.") public var policy: String
    @Option(help: "Dialogues under a standing instruction (JSON lines: id, instruction, turns).") public var dialogues: String
    @Option(help: "Demonstrations to copy ahead of GAtt's (the iteration's selections).") public var selections: String?
    @Option(help: "Where to write the demonstrations.") public var out: String
    @Option(help: "Sampling temperature (0: greedy).") public var temperature: Double = 0
    @Option(help: "Longest answer, in tokens.") public var maxNewTokens: Int = 48
    @Option(help: "Ranks the policy is split across by tensor parallelism (started with mpirun on this machine).") public var tensor: Int = 1
    @Option(help: "Seed.") public var seed: UInt64 = 1
    /// Optional: an annotator that keeps only the turns that keep the instruction.
    @OptionGroup public var annotator: AnnotatorOptions
    public init() {}
    public init(policy: String, dialogues: String, selections: String?, out: String, temperature: Double, maxNewTokens: Int,
                seed: UInt64, annotator: [String]?, tensor: Int = 1) {
        var o = Self()
        o.tensor = tensor
        o.policy = policy; o.dialogues = dialogues; o.selections = selections; o.out = out
        o.temperature = temperature; o.maxNewTokens = maxNewTokens; o.seed = seed
        o.annotator = AnnotatorOptions.command(annotator ?? [])
        self = o
    }
}

/// Every stage command, for the command line and the tests that parse stages back.
public enum StageCommands {
    public static let all: [any StageCommand.Type] = [AnnotateOptions.self, RMAccuracyOptions.self, RMHealthOptions.self, SampleOptions.self,
                                                      SelectOptions.self, EvaluateOptions.self, GAttOptions.self]
}
