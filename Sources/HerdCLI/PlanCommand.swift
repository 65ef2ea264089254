import ArgumentParser
import Foundation
import Herd

/// `herd plan JOB --cluster C`.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Lay a job out on a cluster: ranks, shards, memory per rank, FLOPs and time — before anything starts. Given an RLHF pipeline manifest, every stage of every iteration.")
    @Argument(help: "The job manifest.") var job: String
    @Option(help: "The cluster description (clusters/*.yaml).") var cluster: String
    @Option(help: "Also write plan.json (the file workers follow) into this directory.") var write: String?
    @Flag(help: "Search the tensor degree, ZeRO stage and recomputation for the same number of ranks: the layouts that fit, fastest first, and the best one's plan.")
    var suggest = false

    func run() throws {
        if (try? String(contentsOfFile: job, encoding: .utf8))?.range(of: "(?m)^iterations:", options: .regularExpression) != nil {
            // A pipeline manifest: every stage of every iteration.
            do {
                let m = try PipelineManifest.load(path: job, checkFiles: false)
                return print(try PipelinePlan.make(manifest: m, cluster: try ClusterSpec.load(path: cluster)).text, terminator: "")
            } catch { fail(error) }
        }
        do {
            let m = try JobManifest.load(path: job, overrides: .init(planOnly: true))
            let c = try ClusterSpec.load(path: cluster)
            // The shape without reading the data (a char-level job without vocab_size counts its corpus's characters).
            let model = try ResolvedJob.shape(of: m).0
            var report = try PlanReport.make(manifest: m, model: model, cluster: c)
            if suggest {
                let found = try LayoutSearch.candidates(manifest: m, model: model, cluster: c)
                let fitting = found.filter(\.fits)
                print("\(fitting.count) of \(found.count) layouts of \(m.parallelism.world) ranks fit \(c.name); the fastest:")
                for candidate in fitting.prefix(5) { print("  " + candidate.line) }
                guard let best = fitting.first else { throw ValidationError("no layout of \(m.parallelism.world) ranks fits: \(report.memoryProblem ?? "")") }
                print("the best one's plan (set these in the manifest):")
                report = best.report
            }
            print(report.text)
            if let problem = report.memoryProblem { fail(ValidationError(problem)) }
            if let write {
                try FileManager.default.createDirectory(atPath: write, withIntermediateDirectories: true)
                try report.plan.write(to: write)
                print("wrote \(RunDirectory(write).plan)")
            }
        } catch { fail(error) }
    }
}
