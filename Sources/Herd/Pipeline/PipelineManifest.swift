import Foundation
import Yams

/// A pipeline manifest (`jobs/rlhf-*.yaml`): the iterative RLHF loop of the
/// Llama 2 paper as a team configures it — the policies by size (one the
/// sampler, the rest distilled from it), the reward models, the prompt
/// sets with their safety tags, the annotator command, and per iteration
/// the new annotation batch, K, the sampling temperature, whether the
/// selection pools every earlier bag, fine-tuning settings and extra
/// stages. Checked field by field before any stage starts; the stage jobs
/// it makes are ordinary Herd manifests (see PipelineGraph).
public struct PipelineManifest: @unchecked Sendable {  // Yams mappings are plain values
    public enum SelectionArm: String, Sendable, CaseIterable {
        /// The paper: the reward models' combined reward picks the best sample.
        case rewardModel = "reward_model"
        /// The control arm: the annotator's own ratings pick it.
        case annotator
    }

    public struct Policy: @unchecked Sendable, Equatable {
        public var name: String
        /// The checkpoint this size starts from (its SFT model).
        public var initial: String
        public var sampler: Bool
        /// A preset naming the shape, for `herd plan` when the checkpoint is not on this machine.
        public var preset: String?
        /// Fine-tuning fields for this size (its parallelism, say), over the pipeline's.
        public var finetune: Node.Mapping
        /// PPO fields for this size (the paper's β is 0.005 for 70B), over the pipeline's.
        public var ppo: Node.Mapping = Node.Mapping([])
    }

    /// What `herd plan` assumes of data that is not on this machine.
    public struct PlanningSizes: Sendable {
        public var samplePrompts: Int?, initialPool = 0, heldOut: Int?
        public var promptTokens = 256, answerTokens = 256
        /// Sequences a tensor-parallel group generates at once.
        public var generationBatch = 64
        /// Ghost Attention's dialogues, when their file is not on this machine.
        public var gattDialogues: Int?, gattTurns = 4
    }

    public struct Iteration: @unchecked Sendable {
        public var number: Int
        public var name: String
        /// New prompts labelled by the annotator this round (the next ones of prompts.annotate).
        public var annotate: Int
        public var k: Int
        public var temperature: Double
        /// Whether the selection pools the best of every bag so far.
        public var pool: Bool
        /// Stages beyond the core graph (see PipelineGraph.extraStages).
        public var extraStages: [String]
        /// Fine-tuning fields for this round, over the pipeline's.
        public var finetune: Node.Mapping
    }

    public var file: String
    public var name: String
    public var seed: UInt64
    public var output: String
    public var annotator: [String]
    public var selection: SelectionArm
    public var annotatePrompts: String, samplePrompts: String, heldOutPrompts: String
    public var sampleCount: Int?
    public var policies: [Policy]
    public var rewardInit: String
    public var rewardPreset: String?
    public var initialPool: String?
    public var planning = PlanningSizes()
    /// Job fields of the reward-model and fine-tuning stages (kind, init,
    /// data files and output are the pipeline's to set).
    public var rewardJobs: [String: Node.Mapping]
    public var finetuneJob: Node.Mapping
    public var finetuneFromPrevious: Bool
    /// Earlier demonstrations each round's fine-tuning data mixes in after the selections.
    public var finetuneDemonstrations: (file: String, count: Int)?
    /// Job fields of the PPO stages (`ppo:`; the ppo section's reward
    /// models, and the job's kind, init, prompts and output are the pipeline's).
    public var ppoJob: Node.Mapping
    /// Ghost Attention (`gatt:`): its dialogues, the held-out ones the
    /// evaluation measures instruction keeping on, and the first iteration.
    public struct GAttSettings: Sendable {
        public var dialogues: String
        public var heldOut: String?
        public var from = 3
        public var temperature = 0.0
        /// Keep only the sampled turns the annotator says keep the instruction.
        public var checkByAnnotator = false
        /// Ranks the policy is split across while it samples the turns.
        public var tensor = 1
    }
    public var gatt: GAttSettings?
    public var annotationTokens: Int, annotationTemperatures: (Double, Double), annotationTensor: Int
    public var samplingTokens: Int, samplingRanks: Int, samplingTensor: Int, samplingChunk: Int
    public var evaluationTokens: Int, evaluationTensor: Int, evaluationSamples: Int
    public var poolFrom: Int
    public var iterations: [Iteration]
    /// When an iteration's policy becomes the incumbent (`promotion:`).
    public var promotion = PromotionRule()
    /// What the reward models must reach before sampling uses them (`reward_models.health:`).
    public var health = HealthRule()

    public var sampler: Policy { policies.first(where: \.sampler)! }

    public static func load(path: String, checkFiles: Bool = true) throws(ManifestError) -> PipelineManifest {
        try parse(yaml: try YAMLFields.text(path: path, what: "pipeline manifest"), file: path, checkFiles: checkFiles)
    }

    static let topFields = ["name", "seed", "output", "annotator", "selection", "prompts", "policies", "reward_models",
                            "finetune", "ppo", "gatt", "annotation", "sampling", "evaluation", "pool_from", "iterations", "plan", "promotion"]

    /// Each section parses itself (Sections/); `validate` then checks the
    /// rules that span sections and every stage job the pipeline will make.
    /// Sections are read in this order, which is the order a manifest's
    /// mistakes are reported in.
    public static func parse(yaml text: String, file: String, checkFiles: Bool = true) throws(ManifestError) -> PipelineManifest {
        let top = try YAMLFields.top(yaml: text, file: file, what: "pipeline manifest", base: FileManager.default.currentDirectoryPath)
        try top.rejectUnknown(allowed: topFields)
        let name = try top.string("name") ?? ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        let seed = UInt64(try top.int("seed", min: 0) ?? 1)
        let output = try top.requiredString("output", "the pipeline's run directory")
        let annotator = try parseAnnotator(top, checkFiles: checkFiles)
        let selection = try SelectionArm.parse(top)
        let prompts = try parsePrompts(top.requiredSection("prompts", "annotate, sample and held_out prompt files"), checkFiles: checkFiles)
        let policies = try Policy.parseList(in: top, checkFiles: checkFiles)
        let rewardModels = try parseRewardModels(top.requiredSection("reward_models", "init and the helpfulness and safety jobs' fields"),
                                                 checkFiles: checkFiles)
        let finetune = try parseFinetune(top.requiredSection("finetune", "the fine-tuning jobs' fields (batch, optimizer, epochs, data.seq_len, ...)"),
                                         checkFiles: checkFiles)
        let ppoJob = try template(top.section("ppo"))
        var gatt: GAttSettings?
        if let g = try top.section("gatt") { gatt = try GAttSettings.parse(g, checkFiles: checkFiles) }
        let annotation = try parseAnnotation(top.sectionOrEmpty("annotation"))
        let sampling = try parseSampling(top.sectionOrEmpty("sampling"))
        let evaluation = try parseEvaluation(top.sectionOrEmpty("evaluation"))
        let poolFrom = try top.int("pool_from", min: 1) ?? 4
        let iterations = try Iteration.parseList(in: top, gattFrom: gatt?.from, poolFrom: poolFrom)
        let planning = try PlanningSizes.parse(top.sectionOrEmpty("plan"))
        let promotion = try PromotionRule.parse(top.sectionOrEmpty("promotion"))

        let m = PipelineManifest(
            file: file, name: name, seed: seed, output: output, annotator: annotator, selection: selection,
            annotatePrompts: prompts.annotate, samplePrompts: prompts.sample, heldOutPrompts: prompts.heldOut, sampleCount: prompts.sampleCount,
            policies: policies, rewardInit: rewardModels.initial, rewardPreset: rewardModels.preset, initialPool: rewardModels.initialPool,
            planning: planning, rewardJobs: rewardModels.jobs, finetuneJob: finetune.job, finetuneFromPrevious: finetune.fromPrevious, finetuneDemonstrations: finetune.demonstrations,
            ppoJob: ppoJob, gatt: gatt, annotationTokens: annotation.maxNewTokens, annotationTemperatures: annotation.temperatures,
            annotationTensor: annotation.tensor,
            samplingTokens: sampling.maxNewTokens, samplingRanks: sampling.ranks, samplingTensor: sampling.tensor, samplingChunk: sampling.chunk,
            evaluationTokens: evaluation.maxNewTokens, evaluationTensor: evaluation.tensor, evaluationSamples: evaluation.samples, poolFrom: poolFrom, iterations: iterations,
            promotion: promotion, health: rewardModels.health)
        try m.validate()
        return m
    }

    /// The path of the annotator's executable (`herd` is this herd), or nil.
    public static func executable(_ word: String) -> String? {
        if word == "herd" { return Self.herdExecutable }
        if word.contains("/") { return FileManager.default.isExecutableFile(atPath: word) ? word : nil }
        return Spawn.which(word)
    }

    /// The running herd binary, which stage commands call.
    /// (A binary rebuilt while a pipeline runs reads back as "PATH (deleted)":
    /// the later stages run the new one at PATH.)
    public static var herdExecutable: String {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return path.hasSuffix(" (deleted)") ? String(path.dropLast(" (deleted)".count)) : path
    }

    /// The annotator's argv with `herd` resolved.
    public var annotatorCommand: [String] { [Self.executable(annotator[0]) ?? annotator[0]] + annotator.dropFirst() }
}
