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
        @Option(help: "NAME=PATH of a policy to evaluate (repeatable).") var policy: [String]
        @Option(help: "NAME=PATH: the reference policy (e.g. the SFT model) NAME is compared with.") var reference: [String] = []
        @Option(help: "Held-out prompts.") var prompts: String
        @Option(help: "Where to write the results (JSON).") var out: String
        @Option(help: "Longest answer, in tokens.") var maxNewTokens: Int = 64
        @Option(help: "Seed of the T=1 samples.") var seed: UInt64 = 1
        @Option(help: "Held-out dialogues under a standing instruction: the share of turns that keep it, per turn (Ghost Attention's measure).")
        var dialogues: String?
        @OptionGroup var annotator: AnnotatorCommand

        func run() throws {
            let command = annotator.required()
            func pairs(_ list: [String], _ flag: String) -> [(String, String)] {
                list.map { item in
                    guard let eq = item.firstIndex(of: "="), eq != item.startIndex else { fail(ValidationError("\(flag): expected NAME=PATH, got \(item)")) }
                    return (String(item[..<eq]), String(item[item.index(after: eq)...]))
                }
            }
            let refs = Dictionary(pairs(reference, "--reference"), uniquingKeysWith: { a, _ in a })
            var step = PolicyEvaluation(policies: pairs(policy, "--policy").map { .init(name: $0.0, path: $0.1, reference: refs[$0.0]) },
                                        prompts: prompts, annotator: command)
            step.maxNewTokens = maxNewTokens
            step.seed = seed
            step.timeout = annotator.timeout
            step.instructedDialogues = dialogues
            do {
                let results = try step.run { print("herd: \($0)"); fflush(stdout) }
                try JSONFile.write(results, to: out)
            } catch { fail(error) }
        }
    }

    struct GAtt: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gatt",
            abstract: "Ghost Attention's data: sample every turn of dialogues under a standing instruction with it on every user turn, keep it on the first, loss on the last answer; writes demonstrations (after --selections' if given).")
        @Option(help: "The latest policy.") var policy: String
        @Option(help: "Dialogues under a standing instruction (JSON lines: id, instruction, turns).") var dialogues: String
        @Option(help: "Where to write the demonstrations.") var out: String
        @Option(help: "Demonstrations to copy ahead of GAtt's (the iteration's selections).") var selections: String?
        @Option(help: "Sampling temperature (0: greedy).") var temperature: Double = 0
        @Option(help: "Longest answer, in tokens.") var maxNewTokens: Int = 48
        @Option(help: "Seed.") var seed: UInt64 = 1
        /// Optional: an annotator that keeps only the turns that keep the instruction.
        @OptionGroup var annotator: AnnotatorCommand

        func run() throws {
            var step = GhostAttention(policy: policy, dialogues: dialogues, out: out)
            if !annotator.words.isEmpty { step.annotator = annotator.words }
            step.timeout = annotator.timeout
            step.selections = selections
            step.temperature = temperature
            step.maxNewTokens = maxNewTokens
            step.seed = seed
            do { try step.run { print("herd: \($0)"); fflush(stdout) } } catch { fail(error) }
        }
    }

    struct RMAccuracy: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm-accuracy",
            abstract: "The reward models' accuracy on one batch of comparisons (helpfulness on prompts not tagged safety, safety on those tagged); writes JSON.")
        @Option(help: "The helpfulness reward model.") var helpfulness: String
        @Option(help: "The safety reward model.") var safety: String
        @Option(help: "The comparison pool.") var pool: String
        @Option(help: "The batch to score (e.g. V2: pairs of the current policy's answers the models were not trained on).") var batch: String
        @Option(help: "The prompts, for their safety tags.") var prompts: String
        @Option(help: "Where to write the result (JSON).") var out: String

        func run() throws {
            do {
                let r = try OnPolicyAccuracy.measure(helpfulness: helpfulness, safety: safety, pool: pool, batch: batch, prompts: prompts)
                try JSONFile.write(r, to: out)
                print(String(format: "batch %@: helpfulness RM %@ on %d pairs, safety RM %@ on %d pairs", batch,
                             r.helpfulness.accuracy.map { String(format: "%.3f", $0) } ?? "—", r.helpfulness.pairs,
                             r.safety.accuracy.map { String(format: "%.3f", $0) } ?? "—", r.safety.pairs))
            } catch { fail(error) }
        }
    }
}
