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
    }
    public var gatt: GAttSettings?
    public var annotationTokens: Int, annotationTemperatures: (Double, Double)
    public var samplingTokens: Int, samplingRanks: Int, samplingChunk: Int
    public var evaluationTokens: Int
    public var poolFrom: Int
    public var iterations: [Iteration]

    public var sampler: Policy { policies.first(where: \.sampler)! }

    public static func load(path: String, checkFiles: Bool = true) throws(ManifestError) -> PipelineManifest {
        try parse(yaml: try YAMLFields.text(path: path, what: "pipeline manifest"), file: path, checkFiles: checkFiles)
    }

    public static func parse(yaml text: String, file: String, checkFiles: Bool = true) throws(ManifestError) -> PipelineManifest {
        let top = try YAMLFields.top(yaml: text, file: file, what: "pipeline manifest", base: FileManager.default.currentDirectoryPath)
        try top.rejectUnknown(allowed: ["name", "seed", "output", "annotator", "selection", "prompts", "policies", "reward_models",
                                        "finetune", "ppo", "gatt", "annotation", "sampling", "evaluation", "pool_from", "iterations", "plan"])
        func preset(_ f: YAMLFields) throws(ManifestError) -> String? {
            guard let p = try f.string("model") else { return nil }
            guard LlamaConfig.presets[p] != nil else {
                throw f.error("model", "unknown preset \"\(p)\"; expected one of: \(LlamaConfig.presets.keys.sorted().joined(separator: ", "))")
            }
            return p
        }
        func exists(_ f: YAMLFields, _ key: String, _ path: String, _ what: String) throws(ManifestError) {
            if checkFiles && !FileManager.default.fileExists(atPath: path) { throw f.error(key, "no such \(what): \(path)") }
        }
        let name = try top.string("name") ?? ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        let seed = UInt64(try top.int("seed", min: 0) ?? 1)
        let output = try top.requiredString("output", "the pipeline's run directory")

        guard let argv = try top.strings("annotator"), let exe = argv.first else {
            throw top.missing("annotator", "the annotator command as a list of words (an argv, never a shell string), e.g. [herd, rlhf, annotator]")
        }
        if checkFiles && PipelineManifest.executable(exe) == nil {
            throw top.error("annotator", "\(exe) is not an executable file (nor a command on PATH)")
        }
        let selectionText = try top.string("selection") ?? SelectionArm.rewardModel.rawValue
        guard let selection = SelectionArm(rawValue: selectionText) else {
            throw top.error("selection", "expected reward_model or annotator, got \"\(selectionText)\"")
        }

        let p = try top.requiredSection("prompts", "annotate, sample and held_out prompt files")
        try p.rejectUnknown(allowed: ["annotate", "sample", "sample_count", "held_out"])
        let annotatePrompts = try p.requiredString("annotate", "the prompts each iteration's annotation batch is drawn from")
        let samplePrompts = try p.string("sample") ?? annotatePrompts
        let heldOut = try p.requiredString("held_out", "the held-out prompts every iteration is evaluated on")
        try exists(p, "annotate", annotatePrompts, "prompt file")
        try exists(p, "sample", samplePrompts, "prompt file")
        try exists(p, "held_out", heldOut, "prompt file")
        let sampleCount = try p.int("sample_count", min: 1)

        guard let list = top.mapping["policies"]?.sequence, !list.isEmpty else {
            throw top.missing("policies", "a list of {name, init, sampler} — the policy sizes, one of them the sampler")
        }
        var policies: [Policy] = []
        for (i, node) in list.enumerated() {
            let f = try YAMLFields(node, path: "policies[\(i)]", file: file, base: top.base)
            try f.rejectUnknown(allowed: ["name", "init", "sampler", "model", "finetune", "ppo"])
            let n = try f.requiredString("name", "a short name for this size, e.g. 70b")
            guard n.range(of: "^[A-Za-z0-9_.-]+$", options: .regularExpression) != nil else {
                throw f.error("name", "letters, digits, '.', '_' and '-' only (it names directories), got \"\(n)\"")
            }
            if policies.contains(where: { $0.name == n }) { throw f.error("name", "two policies are called \(n)") }
            let initial = try f.requiredString("init", "the policy's starting checkpoint (its SFT run)")
            try exists(f, "init", initial, "policy (run, checkpoint or Hugging Face directory)")
            policies.append(Policy(name: n, initial: initial, sampler: try f.bool("sampler") ?? false, preset: try preset(f),
                                   finetune: try template(f.section("finetune")), ppo: try template(f.section("ppo"))))
        }
        switch policies.filter(\.sampler).count {
        case 0: if policies.count == 1 { policies[0].sampler = true } else { throw top.error("policies", "name one policy as the sampler (sampler: true)") }
        case 1: break
        default: throw top.error("policies", "only one policy samples (sampler: true); the others are distilled from it")
        }

        let r = try top.requiredSection("reward_models", "init and the helpfulness and safety jobs' fields")
        try r.rejectUnknown(allowed: ["init", "initial_pool", "helpfulness", "safety", "model"])
        let rewardPreset = try preset(r)
        let rewardInit = try r.requiredString("init", "the chat model the reward models start from")
        try exists(r, "init", rewardInit, "reward-model starting point (run, checkpoint or Hugging Face directory)")
        let initialPool = try r.string("initial_pool")
        if let ip = initialPool { try exists(r, "initial_pool", ip, "comparison file") }
        var rewardJobs: [String: Node.Mapping] = [:]
        for objective in ["helpfulness", "safety"] {
            rewardJobs[objective] = try template(r.section(objective))
        }

        let ft = try top.requiredSection("finetune", "the fine-tuning jobs' fields (batch, optimizer, epochs, data.seq_len, ...)")
        let from = try ft.string("from") ?? "previous"
        guard from == "previous" || from == "initial" else {
            throw ft.error("from", "expected previous (each size from its last iteration's checkpoint) or initial (from its SFT model), got \"\(from)\"")
        }
        var finetuneJob = ft.mapping
        finetuneJob["from"] = nil
        _ = try template(YAMLFields(.mapping(finetuneJob), path: "finetune", file: file, base: top.base))

        let ppoJob = try template(top.section("ppo"))
        // The PPO stage's reward models are the iteration's: a template may not name others.
        for (field, t) in [("ppo", ppoJob)] + policies.enumerated().map({ ("policies[\($0.offset)].ppo", $0.element.ppo) }) {
            for key in ["helpfulness", "safety"] where t["ppo"]?.mapping?[Node(key)] != nil {
                throw ManifestError(file: file, field: "\(field).ppo.\(key)", message: "set by the pipeline (the iteration's reward models); leave it out")
            }
        }

        var gatt: GAttSettings?
        if let g = try top.section("gatt") {
            try g.rejectUnknown(allowed: ["dialogues", "held_out", "from", "temperature", "check"])
            let d = try g.requiredString("dialogues", "multi-turn dialogues under a standing instruction (JSON lines: id, instruction, turns)")
            try exists(g, "dialogues", d, "dialogue file")
            var s = GAttSettings(dialogues: d)
            s.heldOut = try g.string("held_out")
            if let h = s.heldOut { try exists(g, "held_out", h, "dialogue file") }
            s.from = try g.int("from", min: 1) ?? s.from
            s.temperature = try g.double("temperature", min: 0) ?? s.temperature
            let check = try g.string("check") ?? "none"
            guard check == "none" || check == "annotator" else {
                throw g.error("check", "expected none or annotator (keep only the sampled turns the annotator says keep the instruction), got \"\(check)\"")
            }
            s.checkByAnnotator = check == "annotator"
            gatt = s
        }

        let a = try top.section("annotation") ?? top.empty("annotation")
        try a.rejectUnknown(allowed: ["max_new_tokens", "temperatures"])
        var temps = (1.0, 1.5)
        if let t = a.mapping["temperatures"] {
            guard let seq = t.sequence, seq.count == 2, let x = seq[0].float, let y = seq[1].float, x > 0, y > 0 else {
                throw a.error("temperatures", "expected two positive numbers, e.g. [1.0, 1.5]")
            }
            temps = (x, y)
        }
        let s = try top.section("sampling") ?? top.empty("sampling")
        try s.rejectUnknown(allowed: ["max_new_tokens", "ranks", "chunk"])
        let e = try top.section("evaluation") ?? top.empty("evaluation")
        try e.rejectUnknown(allowed: ["max_new_tokens"])
        let poolFrom = try top.int("pool_from", min: 1) ?? 4

        guard let its = top.mapping["iterations"]?.sequence, !its.isEmpty else {
            throw top.missing("iterations", "a list of iterations V1, V2, ...: {annotate, k, temperature}")
        }
        var iterations: [Iteration] = []
        for (i, node) in its.enumerated() {
            let f = try YAMLFields(node, path: "iterations[\(i)]", file: file, base: top.base)
            try f.rejectUnknown(allowed: ["name", "annotate", "k", "temperature", "pool", "stages", "finetune"])
            let number = i + 1
            let n = try f.string("name") ?? "V\(number)"
            guard n == "V\(number)" else { throw f.error("name", "iterations are V1, V2, ... in order; this one is V\(number), got \"\(n)\"") }
            var extra = try f.strings("stages") ?? []
            if let g = gatt, number >= g.from, !extra.contains("gatt") { extra.insert("gatt", at: 0) }
            if extra.contains("gatt") && gatt == nil {
                throw f.error("stages", "stage gatt needs the pipeline's gatt section (gatt.dialogues: dialogues under a standing instruction)")
            }
            for st in extra {
                guard let known = PipelineGraph.extraStages[st] else {
                    throw f.error("stages", "unknown stage \"\(st)\"; known extra stages: \(PipelineGraph.extraStages.keys.sorted().joined(separator: ", "))")
                }
                if let why = known.unavailable { throw f.error("stages", "stage \(st) is not available yet: \(why)") }
            }
            let temperature = try f.double("temperature", min: 0) ?? 1.0
            guard temperature > 0 else { throw f.error("temperature", "must be above 0 (rejection sampling samples)") }
            iterations.append(Iteration(number: number, name: n, annotate: try f.requiredInt("annotate", min: 1, "how many new prompts the annotator labels this round"),
                                        k: try f.requiredInt("k", min: 1, "samples per prompt"), temperature: temperature,
                                        pool: try f.bool("pool") ?? (number >= poolFrom), extraStages: extra,
                                        finetune: try template(f.section("finetune"))))
        }

        let m = PipelineManifest(
            file: file, name: name, seed: seed, output: output, annotator: argv, selection: selection,
            annotatePrompts: annotatePrompts, samplePrompts: samplePrompts, heldOutPrompts: heldOut, sampleCount: sampleCount,
            policies: policies, rewardInit: rewardInit, rewardPreset: rewardPreset, initialPool: initialPool, planning: try planningSizes(top),
            rewardJobs: rewardJobs,
            finetuneJob: finetuneJob, finetuneFromPrevious: from == "previous", ppoJob: ppoJob, gatt: gatt,
            annotationTokens: try a.int("max_new_tokens", min: 1) ?? 64, annotationTemperatures: temps,
            samplingTokens: try s.int("max_new_tokens", min: 1) ?? 64, samplingRanks: try s.int("ranks", min: 1) ?? 1,
            samplingChunk: try s.int("chunk", min: 1) ?? 8, evaluationTokens: try e.int("max_new_tokens", min: 1) ?? 64,
            poolFrom: poolFrom, iterations: iterations)
        try m.checkStageJobs()
        return m
    }

    /// A stage job's fields: everything a job manifest has but what the pipeline sets.
    static func template(_ f: YAMLFields?) throws(ManifestError) -> Node.Mapping {
        guard let f else { return Node.Mapping([]) }
        for key in ["name", "kind", "init", "output"] where f.has(key) {
            throw f.error(key, "set by the pipeline for every stage job; leave it out")
        }
        return f.mapping
    }

    static func planningSizes(_ top: YAMLFields) throws(ManifestError) -> PlanningSizes {
        var p = PlanningSizes()
        guard let f = try top.section("plan") else { return p }
        try f.rejectUnknown(allowed: ["sample_prompts", "initial_pool", "held_out", "prompt_tokens", "answer_tokens", "generation_batch",
                                      "gatt_dialogues", "gatt_turns"])
        p.samplePrompts = try f.int("sample_prompts", min: 1)
        p.initialPool = try f.int("initial_pool", min: 0) ?? 0
        p.heldOut = try f.int("held_out", min: 1)
        p.promptTokens = try f.int("prompt_tokens", min: 1) ?? p.promptTokens
        p.answerTokens = try f.int("answer_tokens", min: 1) ?? p.answerTokens
        p.generationBatch = try f.int("generation_batch", min: 1) ?? p.generationBatch
        p.gattDialogues = try f.int("gatt_dialogues", min: 1)
        p.gattTurns = try f.int("gatt_turns", min: 1) ?? p.gattTurns
        return p
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

    /// Each stage job's fields checked now, as Herd checks any manifest
    /// (unknown fields, types, ranges), with a stand-in model and no data,
    /// so that a mistake is named before the first stage starts.
    func checkStageJobs() throws(ManifestError) {
        let probe = PipelineGraph(manifest: self)
        var jobs: [(String, String)] = []
        for objective in ["helpfulness", "safety"] {
            jobs.append(("reward_models.\(objective)", probe.rewardJob(objective: objective, iteration: iterations[0], standIn: PipelineGraph.probeShape)))
        }
        for it in iterations {
            jobs.append((it.finetune.isEmpty ? "finetune" : "iterations[\(it.number - 1)].finetune",
                         probe.finetuneJob(policy: policies[0], iteration: it, standIn: PipelineGraph.probeShape)))
        }
        for it in iterations where it.extraStages.contains("ppo") {
            jobs.append(("ppo", probe.ppoJob(policy: policies[0], iteration: it, standIn: PipelineGraph.probeShape)))
        }
        for (field, text) in jobs {
            _ = try JobManifest.parse(yaml: text, file: "\(file) (\(field))", overrides: .init(planOnly: true))
        }
    }
}
