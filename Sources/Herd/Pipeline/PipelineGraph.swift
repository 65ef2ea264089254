import Foundation
import Yams

/// One box of an iteration's graph: a herd command (a training job's
/// `herd run STAGE.yaml`, or an `herd rlhf` step), the files it needs
/// written first (its job manifest, its slice of the prompts), and how to
/// read its progress. Every stage is an ordinary command a person could
/// run by hand from the pipeline's log.
public struct PipelineStage: Sendable {
    public struct File: Sendable {
        public var path: String, text: String
        /// Written only if absent (the preference pool, which the stages then append to).
        public var keepIfPresent = false
    }

    public enum Progress: Sendable {
        case none
        /// JSON lines appended to a file (of one batch), out of a total.
        case lines(path: String, batch: String?, total: Int)
        /// A training job's steps, from its events.
        case steps(run: String)
    }

    public var iteration: Int
    public var name: String
    public var arguments: [String]
    public var files: [File] = []
    public var progress: Progress = .none
    /// A training job: under `--cluster` it runs through the coordinator.
    public var isJob = false

    public var iterationName: String { PipelineGraph.iterationName(iteration) }
    public var id: String { "\(iterationName)/\(name)" }
}

extension PipelineStage {
    /// A stage that runs a typed `herd` command (its argv written from the command's own options).
    init(iteration: Int, name: String, command: some StageCommand, files: [File] = [], progress: Progress = .none) {
        self.init(iteration: iteration, name: name, arguments: command.arguments, files: files, progress: progress)
    }

    /// A training job's stage: `herd run JOB` (under `--cluster`, through the coordinator).
    init(iteration: Int, name: String, job: File, run: String) {
        self.init(iteration: iteration, name: name, arguments: ["run", job.path], files: [job], progress: .steps(run: run), isJob: true)
    }
}

/// An iteration's stages, in the order they run (each after the one
/// before): annotate → the reward models' accuracy on the fresh batch →
/// reward models → their health check → rejection sampling → selection →
/// fine-tune every size → extra stages → evaluate, after which the
/// scheduler applies the promotion gate. Iteration 0 ("SFT") is the
/// evaluation of the starting policies, the report's baseline. An
/// iteration samples and starts from the incumbents, which the gate's
/// decisions on the iterations before it name, so its stages are built
/// when it runs.
public struct PipelineGraph {
    public let manifest: PipelineManifest

    public init(manifest: PipelineManifest) { self.manifest = manifest }

    /// Stages an iteration may add by name (`stages: [gatt]`), placed
    /// after the fine-tuning and before the evaluation. Adding one is an
    /// entry here: the scheduler runs whatever stages the graph lists.
    public struct ExtraStage: Sendable {
        public var unavailable: String?
        /// Runs before the fine-tuning (it adds to its data), not after it.
        public var beforeFineTune = false
        public var build: @Sendable (PipelineGraph, PipelineManifest.Iteration) throws -> [PipelineStage]
    }

    public static let extraStages: [String: ExtraStage] = [
        "gatt": ExtraStage(unavailable: nil, beforeFineTune: true, build: { g, it in [try g.gattStage(it)] }),
        "ppo": ExtraStage(unavailable: nil, build: { g, it in g.ppoStages(it) }),
    ]

    public static func iterationName(_ n: Int) -> String { n == 0 ? "SFT" : "V\(n)" }

    var run: String { manifest.output }
    public func directory(_ n: Int) -> String { "\(run)/\(Self.iterationName(n))" }
    public var pool: String { "\(run)/pool.jsonl" }
    public func bag(_ n: Int) -> String { "\(directory(n))/bag.jsonl" }
    public func evaluation(_ n: Int) -> String { "\(directory(n))/evaluation.json" }
    public func rewardModel(_ objective: String, _ n: Int) -> String { "\(directory(n))/rm-\(objective)" }
    public func rewardOnPolicy(_ n: Int) -> String { "\(directory(n))/rm-on-policy.json" }
    public func rewardHealth(_ n: Int) -> String { "\(directory(n))/rm-health.json" }

    /// Iteration n's policy of a size (n = 0: its SFT model), the candidate
    /// the gate judges: its PPO run when the iteration has a PPO stage,
    /// else its fine-tune. What later iterations start from is the
    /// incumbent (PromotionGate.swift).
    public func candidate(_ p: PipelineManifest.Policy, of n: Int) -> String {
        if n == 0 { return p.initial }
        return manifest.iterations[n - 1].extraStages.contains("ppo") ? ppoRun(p, n) : finetuned(p, n)
    }

    /// The rejection-sampling fine-tune of a policy in iteration n, and its PPO run.
    public func finetuned(_ p: PipelineManifest.Policy, _ n: Int) -> String { "\(directory(n))/finetune-\(p.name)" }
    public func ppoRun(_ p: PipelineManifest.Policy, _ n: Int) -> String { "\(directory(n))/ppo-\(p.name)" }

    /// A stage's seed: readable, distinct per iteration and stage kind.
    func seed(_ n: Int, _ salt: UInt64) -> UInt64 { manifest.seed &* 1000 &+ UInt64(n) &* 10 &+ salt }

    public func stages(_ n: Int) throws -> [PipelineStage] {
        let m = manifest
        if n == 0 {
            return [PipelineStage(iteration: 0, name: "evaluate", command: evaluateCommand(0))]
        }
        let it = m.iterations[n - 1]
        let dir = directory(n)
        var out: [PipelineStage] = []

        let slice = "\(dir)/prompts-annotate.jsonl"
        var annotate = PipelineStage(
            iteration: n, name: "annotate",
            command: AnnotateOptions(policy: try incumbent(m.sampler, after: n - 1), prompts: slice, pool: pool, batch: it.name,
                                     temperatures: m.annotationTemperatures, maxNewTokens: m.annotationTokens, seed: seed(n, 1),
                                     annotator: m.annotatorCommand, tensor: m.annotationTensor),
            files: [.init(path: slice, text: try annotationSlice(n))], progress: .lines(path: pool, batch: it.name, total: it.annotate))
        if n == 1 {
            let initial = try m.initialPool.map { try String(contentsOfFile: $0, encoding: .utf8) } ?? ""
            annotate.files.append(.init(path: pool, text: initial, keepIfPresent: true))
        }
        out.append(annotate)
        if n > 1 {
            out.append(PipelineStage(iteration: n, name: "rm-on-policy", command: RMAccuracyOptions(
                helpfulness: rewardModel("helpfulness", n - 1), safety: rewardModel("safety", n - 1),
                pool: pool, batch: it.name, prompts: m.annotatePrompts, out: rewardOnPolicy(n))))
        }
        for objective in ["helpfulness", "safety"] {
            let job = "\(dir)/rm-\(objective).yaml"
            out.append(PipelineStage(iteration: n, name: "rm-\(objective)", job: .init(path: job, text: rewardJob(objective: objective, iteration: it)),
                                     run: rewardModel(objective, n)))
        }
        if m.health.check {
            // PPO trains against the reward models: the annotator cannot stand
            // in for them there. In the control arm the annotator chooses anyway.
            let fallBack = (m.health.otherwise == .annotator || m.selection == .annotator) && !it.extraStages.contains("ppo")
            out.append(PipelineStage(iteration: n, name: "rm-health", command: RMHealthOptions(
                helpfulness: rewardModel("helpfulness", n), safety: rewardModel("safety", n), onPolicy: n > 1 ? rewardOnPolicy(n) : nil,
                rule: m.health, fallBack: fallBack, out: rewardHealth(n))))
        }
        let samplePrompts = "\(dir)/prompts-sample.jsonl"
        let sampleText = try sampleSlice()
        out.append(PipelineStage(
            iteration: n, name: "sample",
            command: SampleOptions(policy: try incumbent(m.sampler, after: n - 1), helpfulness: rewardModel("helpfulness", n),
                                   safety: rewardModel("safety", n), prompts: samplePrompts, bag: bag(n), iteration: it.name,
                                   k: it.k, temperature: it.temperature, maxNewTokens: m.samplingTokens,
                                   seed: seed(n, 2), chunk: m.samplingChunk, ranks: m.samplingRanks,
                                   tensor: m.samplingTensor),
            files: [.init(path: samplePrompts, text: sampleText)],
            progress: .lines(path: bag(n), batch: nil, total: sampleText.split(separator: "\n").count * it.k)))
        out.append(PipelineStage(iteration: n, name: "select", command: SelectOptions(
            prompts: samplePrompts, bag: bag(n), earlierBags: (1..<n).map(bag), iteration: it.name, poolFrom: it.pool ? 1 : n + 1,
            out: "\(dir)/selections.jsonl", byAnnotator: try selectsByAnnotator(n) ? m.annotatorCommand : nil,
            demonstrations: m.finetuneDemonstrations)))
        for name in it.extraStages where Self.extraStages[name]?.beforeFineTune == true { out += try Self.extraStages[name]!.build(self, it) }
        for p in m.policies {
            let job = "\(dir)/finetune-\(p.name).yaml"
            let text = finetuneJob(policy: p, iteration: it, from: m.finetuneFromPrevious ? try incumbent(p, after: n - 1) : p.initial)
            out.append(PipelineStage(iteration: n, name: "finetune-\(p.name)", job: .init(path: job, text: text), run: finetuned(p, n)))
        }
        for name in it.extraStages where Self.extraStages[name]?.beforeFineTune == false { out += try Self.extraStages[name]!.build(self, it) }
        out.append(PipelineStage(iteration: n, name: "evaluate", command: evaluateCommand(n)))
        return out
    }

    func evaluateCommand(_ n: Int) -> EvaluateOptions {
        EvaluateOptions(prompts: manifest.heldOutPrompts, out: evaluation(n), maxNewTokens: manifest.evaluationTokens, seed: seed(n, 3),
                        dialogues: manifest.gatt?.heldOut, policies: manifest.policies.map { ($0.name, candidate($0, of: n), $0.initial) },
                        annotator: manifest.annotatorCommand, tensor: manifest.evaluationTensor, samples: manifest.evaluationSamples)
    }

    /// Whether the annotator chooses iteration n's samples: the control arm,
    /// or the reward models fell below their thresholds and the manifest
    /// says the annotator stands in (`reward_models.health.otherwise`).
    public func selectsByAnnotator(_ n: Int) throws -> Bool {
        if manifest.selection == .annotator { return true }
        guard let data = FileManager.default.contents(atPath: rewardHealth(n)) else { return false }
        do { return try JSONDecoder().decode(RewardModelHealth.self, from: data).selectionByAnnotator } catch {
            throw RecordError(file: rewardHealth(n), line: 0, message: "not a health check (herd rlhf rm-health writes it; delete it to check again): \(error)")
        }
    }

    /// Iteration n's new prompts for annotation: the next `annotate` lines
    /// of the annotate file after those earlier iterations took (wrapping).
    func annotationSlice(_ n: Int) throws -> String {
        let lines = try Self.lines(manifest.annotatePrompts)
        let it = manifest.iterations[n - 1]
        guard it.annotate <= lines.count else {
            throw ManifestError(file: manifest.file, field: "iterations[\(n - 1)].annotate",
                                message: "asks for \(it.annotate) prompts; \(manifest.annotatePrompts) has \(lines.count)")
        }
        let offset = manifest.iterations.prefix(n - 1).map(\.annotate).reduce(0, +)
        return (0..<it.annotate).map { lines[(offset + $0) % lines.count] + "\n" }.joined()
    }

    /// The prompts every iteration samples (the same set, so that pooling
    /// can choose an earlier bag's answer to the same prompt).
    func sampleSlice() throws -> String {
        let lines = try Self.lines(manifest.samplePrompts)
        return lines.prefix(manifest.sampleCount ?? lines.count).map { $0 + "\n" }.joined()
    }

    static func lines(_ path: String) throws -> [String] {
        do {
            return try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
                .map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        } catch { throw RecordError(file: path, line: 0, message: "cannot read: \(error.localizedDescription)") }
    }

    // MARK: stage jobs

    func rewardJob(objective: String, iteration it: PipelineManifest.Iteration, standIn: String? = nil) -> String {
        let m = manifest
        var reward = manifest.rewardJobs[objective] ?? Node.Mapping([])
        let rewardSection = Self.merge(reward["reward"]?.mapping, [("objective", Node(objective))])
        reward["reward"] = nil
        return Self.job(template: reward, fields: [
            ("name", Node("\(m.name)-\(it.name)-rm-\(objective)")), ("kind", "reward"), ("seed", Node(String(seed(it.number, 4)))),
            ("init", Node(m.rewardInit)),
        ], data: [("comparisons", Node(pool)), ("prompts", Node(m.annotatePrompts))],
           extra: [("reward", .mapping(rewardSection))], output: rewardModel(objective, it.number), standIn: standIn)
    }

    /// A size's fine-tuning job in an iteration, from `from` (the incumbent,
    /// or its SFT model; to check or price the job, any checkpoint of the size).
    func finetuneJob(policy p: PipelineManifest.Policy, iteration it: PipelineManifest.Iteration, from: String? = nil, standIn: String? = nil) -> String {
        var template = manifest.finetuneJob
        for (k, v) in p.finetune { template[k] = v }
        for (k, v) in it.finetune { template[k] = v }
        return Self.job(template: template, fields: [
            ("name", Node("\(manifest.name)-\(it.name)-finetune-\(p.name)")), ("kind", "sft"), ("seed", Node(String(seed(it.number, 5)))),
            ("init", Node(from ?? p.initial)),
        ], data: [("demonstrations", Node(finetuneData(it)))], extra: [],
           output: finetuned(p, it.number), standIn: standIn)
    }

    /// The fine-tuning data of an iteration: its selections, and Ghost
    /// Attention's dialogues after them when the iteration has that stage.
    func finetuneData(_ it: PipelineManifest.Iteration) -> String {
        "\(directory(it.number))/" + (it.extraStages.contains("gatt") ? "finetune-data.jsonl" : "selections.jsonl")
    }

    /// Ghost Attention's data, sampled from the sampler's latest policy.
    func gattStage(_ it: PipelineManifest.Iteration) throws -> PipelineStage {
        let g = manifest.gatt!, dir = directory(it.number)
        return PipelineStage(iteration: it.number, name: "gatt", command: GAttOptions(
            policy: try incumbent(manifest.sampler, after: it.number - 1), dialogues: g.dialogues, selections: "\(dir)/selections.jsonl",
            out: finetuneData(it), temperature: g.temperature, maxNewTokens: manifest.samplingTokens, seed: seed(it.number, 7),
            annotator: g.checkByAnnotator ? manifest.annotatorCommand : nil, tensor: g.tensor))
    }

    /// PPO on each size's fine-tuned policy against the iteration's reward
    /// models, on the prompts rejection sampling used (V5 in the paper).
    func ppoStages(_ it: PipelineManifest.Iteration) -> [PipelineStage] {
        manifest.policies.map { p in
            let job = "\(directory(it.number))/ppo-\(p.name).yaml"
            return PipelineStage(iteration: it.number, name: "ppo-\(p.name)", job: .init(path: job, text: ppoJob(policy: p, iteration: it)),
                                 run: ppoRun(p, it.number))
        }
    }

    func ppoJob(policy p: PipelineManifest.Policy, iteration it: PipelineManifest.Iteration, standIn: String? = nil) -> String {
        var template = manifest.ppoJob
        for (k, v) in p.ppo where k.string != "ppo" { template[k] = v }
        var settings = template["ppo"]?.mapping ?? Node.Mapping([])
        for (k, v) in p.ppo["ppo"]?.mapping ?? Node.Mapping([]) { settings[k] = v }
        let ppo = Self.merge(settings, [("helpfulness", Node(rewardModel("helpfulness", it.number))),
                                                      ("safety", Node(rewardModel("safety", it.number)))])
        template["ppo"] = nil
        return Self.job(template: template, fields: [
            ("name", Node("\(manifest.name)-\(it.name)-ppo-\(p.name)")), ("kind", "ppo"), ("seed", Node(String(seed(it.number, 6)))),
            ("init", Node(finetuned(p, it.number))),
        ], data: [("prompts", Node("\(directory(it.number))/prompts-sample.jsonl"))], extra: [("ppo", .mapping(ppo))],
           output: ppoRun(p, it.number), standIn: standIn)
    }

    /// A job manifest: the pipeline's fields, then the template's (its
    /// data section merged with the pipeline's files). To check or price a
    /// template before its checkpoints exist, a preset stands in for the shape.
    static func job(template: Node.Mapping, fields: [(String, Node)], data: [(String, Node)], extra: [(String, Node)],
                    output: String, standIn: String?) -> String {
        var m = Node.Mapping([])
        for (k, v) in fields { m[Node(k)] = v }
        if let standIn, template["model"] == nil {
            // A preset, or for checking only a shape every usual tensor degree divides.
            m["model"] = .mapping(standIn == probeShape
                ? merge(nil, [("dim", "128"), ("layers", "1"), ("heads", "64"), ("ffn_dim", "64"), ("vocab_size", "256"), ("max_seq_len", "65536")])
                : merge(nil, [("preset", Node(standIn))]))
        }
        for (k, v) in template where k.string != "data" { m[k] = v }
        m["data"] = .mapping(merge(template["data"]?.mapping, data))
        for (k, v) in extra { m[Node(k)] = v }
        m["output"] = Node(output)
        return (try? Yams.serialize(node: .mapping(m))) ?? ""
    }

    static let probeShape = "(probe)"

    static func merge(_ base: Node.Mapping?, _ fields: [(String, Node)]) -> Node.Mapping {
        var m = base ?? Node.Mapping([])
        for (k, v) in fields { m[Node(k)] = v }
        return m
    }
}
