import ArgumentParser
import Foundation
import Herd

/// `herd rlhf launch|resume|status|report`: the iteration scheduler.
extension RLHF {
    static func loadPipeline(_ path: String) -> PipelineManifest {
        do { return try PipelineManifest.load(path: path) } catch { fail(error) }
    }

    /// The scheduler of a pipeline, logging to the terminal (and its run's pipeline.log).
    static func scheduler(_ m: PipelineManifest, cluster: String?) throws -> PipelineScheduler {
        try PipelineScheduler(manifest: m, cluster: cluster) { print("herd: \($0)"); fflush(stdout) }
    }

    struct Launch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run an RLHF iteration (or several) of a pipeline as its graph of Herd jobs: annotate → reward models → sample → select → fine-tune each size → evaluate.")
        @Argument(help: "The pipeline manifest (jobs/rlhf-*.yaml).") var pipeline: String
        @Option(help: "The iteration to run (1 for V1; iteration 1 first evaluates the SFT models).") var iteration: Int
        @Option(help: "Run on through this iteration.") var through: Int?
        @Option(help: "Run the training stages on this cluster (a name in clusters/ or a path), through the coordinator.") var cluster: String?

        func run() throws {
            let m = loadPipeline(pipeline)
            do {
                // The cluster is checked now, and kept as an absolute path for every stage (and a resume).
                let clusterPath = try cluster.map { name -> String in
                    let path = Submission.resolveCluster(name, base: FileManager.default.currentDirectoryPath)
                    _ = try ClusterSpec.load(path: path)
                    return path
                }
                try scheduler(m, cluster: clusterPath).launch(from: iteration, through: through ?? iteration)
            } catch { fail(error) }
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Continue a pipeline at its first unfinished stage (finished stages are skipped), up to the iteration last launched.")
        @Argument(help: "The pipeline manifest.") var pipeline: String

        func run() throws {
            let m = loadPipeline(pipeline)
            do {
                try scheduler(m, cluster: nil).resume()
            } catch { fail(error) }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each iteration's graph with the state, progress and duration of every stage.")
        @Argument(help: "The pipeline manifest.") var pipeline: String

        func run() throws {
            let m = loadPipeline(pipeline)
            do { print(try PipelineStatus.render(graph: PipelineGraph(manifest: m), state: try PipelineState.read(run: m.output)), terminator: "") } catch { fail(error) }
        }
    }

    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a pipeline's report across iterations (rewriting report.md, report.json and report.svg); given several pipelines (arms, seeds), their figures side by side.")
        @Argument(help: "The pipeline manifest(s).") var pipelines: [String]

        func run() throws {
            do {
                var all: [PipelineReport.Figures] = []
                for path in pipelines {
                    let m = loadPipeline(path)
                    let graph = PipelineGraph(manifest: m)
                    guard let last = (0...m.iterations.count).last(where: { FileManager.default.fileExists(atPath: graph.evaluation($0)) }) else {
                        throw PipelineError.notLaunched(run: m.output)
                    }
                    if pipelines.count == 1 { return try PipelineReport(graph: graph).write(through: last) { print($0) } }
                    all.append(try PipelineReport(graph: graph).figures(through: last))
                }
                print(PipelineReport.comparison(all), terminator: "")
            } catch { fail(error) }
        }
    }

    struct Evaluate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rate policies' answers to held-out prompts with the annotator (greedy and at T=1) and their win rate against reference policies; writes JSON.")
        @OptionGroup var options: EvaluateOptions
        @Flag(help: .hidden) var mpiWorker = false

        func run() throws {
            let o = options, annotator = o.annotator, policy = o.policy, reference = o.reference, out = o.out
            let command = annotator.required()
            func pairs(_ list: [String], _ flag: String) -> [(String, String)] {
                list.map { item in
                    guard let eq = item.firstIndex(of: "="), eq != item.startIndex else { fail(ValidationError("\(flag): expected NAME=PATH, got \(item)")) }
                    return (String(item[..<eq]), String(item[item.index(after: eq)...]))
                }
            }
            let refs = Dictionary(pairs(reference, "--reference"), uniquingKeysWith: { a, _ in a })
            var step = PolicyEvaluation(policies: pairs(policy, "--policy").map { .init(name: $0.0, path: $0.1, reference: refs[$0.0]) },
                                        prompts: o.prompts, annotator: command)
            step.maxNewTokens = o.maxNewTokens
            step.seed = o.seed
            guard o.samples >= 1 else { fail(ValidationError("--samples: at least 1, got \(o.samples)")) }
            step.samples = o.samples
            step.timeout = annotator.timeout
            step.instructedDialogues = o.dialogues
            do {
                try MPIRanks.leading(tensor: o.tensor, mpiWorker: mpiWorker) { leader in
                    step.leader = leader
                    let results = try step.run { print("herd: \($0)"); fflush(stdout) }
                    try JSONFile.write(results, to: out)
                }
            } catch { fail(error) }
        }
    }

    struct GAtt: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gatt",
            abstract: "Ghost Attention's data: sample every turn of dialogues under a standing instruction with it on every user turn, keep it on the first, loss on the last answer; writes demonstrations (after --selections' if given).")
        @OptionGroup var options: GAttOptions
        @Flag(help: .hidden) var mpiWorker = false

        func run() throws {
            let o = options
            var step = GhostAttention(policy: o.policy, dialogues: o.dialogues, out: o.out)
            if !o.annotator.words.isEmpty { step.annotator = o.annotator.words }
            step.timeout = o.annotator.timeout
            step.selections = o.selections
            step.temperature = o.temperature
            step.maxNewTokens = o.maxNewTokens
            step.seed = o.seed
            do {
                try MPIRanks.leading(tensor: o.tensor, mpiWorker: mpiWorker) { leader in
                    step.leader = leader
                    try step.run { print("herd: \($0)"); fflush(stdout) }
                }
            } catch { fail(error) }
        }
    }

    struct RMAccuracy: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm-accuracy",
            abstract: "The reward models' accuracy on one batch of comparisons (helpfulness on prompts not tagged safety, safety on those tagged); writes JSON.")
        @OptionGroup var options: RMAccuracyOptions

        func run() throws {
            let o = options, batch = o.batch
            do {
                let r = try OnPolicyAccuracy.measure(helpfulness: o.helpfulness, safety: o.safety, pool: o.pool, batch: batch, prompts: o.prompts)
                try JSONFile.write(r, to: o.out)
                print(String(format: "batch %@: helpfulness RM %@ on %d pairs, safety RM %@ on %d pairs", batch,
                             r.helpfulness.accuracy.map { String(format: "%.3f", $0) } ?? "—", r.helpfulness.pairs,
                             r.safety.accuracy.map { String(format: "%.3f", $0) } ?? "—", r.safety.pairs))
            } catch { fail(error) }
        }
    }

    struct RMHealth: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm-health",
            abstract: "Whether reward models may choose samples: their held-out and on-policy accuracy against thresholds; writes JSON, exits 1 below them.")
        @OptionGroup var options: RMHealthOptions

        func run() throws {
            let o = options
            var probe: (String, String)?
            switch (o.probePrompts, o.probePool) {
            case let (prompts?, pool?): probe = (prompts, pool)
            case (nil, nil): probe = nil
            default: fail(ValidationError("--probe-prompts and --probe-pool go together"))
            }
            let h: RewardModelHealth
            do {
                h = try RewardModelHealth.check(helpfulness: o.helpfulness, safety: o.safety, onPolicy: o.onPolicy, thresholds: o.thresholds,
                                                probe: probe, fallBackToAnnotator: o.fallBackToAnnotator)
                try JSONFile.write(h, to: o.out)
            } catch { fail(error) }
            for m in h.measures {
                print(String(format: "%@ reward model, %@ accuracy %.3f (at least %.3f): %@", m.model, m.measure, m.accuracy, m.threshold,
                             m.passed ? "ok" : "BELOW"))
            }
            for u in h.unmeasured { print("not measured: \(u)") }
            if let p = h.probe {
                print("probe (helpfulness model, right against wrong of the same form; 0.5 is a coin): "
                      + p.keys.sorted().map { String(format: "%@ %.3f", $0, p[$0]!) }.joined(separator: ", "))
            }
            guard !h.healthy else { print("the reward models are healthy"); return }
            if h.selectionByAnnotator {
                print("the reward models are below their thresholds: the annotator chooses this iteration's samples")
                for f in h.failures { print("  \(f)") }
                return
            }
            FileHandle.standardError.write(("herd: error: the reward models may not choose samples: " + h.failures.joined(separator: "; ")
                + " (reward_models.health in the pipeline manifest sets the thresholds; otherwise: annotator lets the annotator choose)\n").data(using: .utf8)!)
            Foundation.exit(1)
        }
    }
}
