import Foundation

/// Runs a pipeline's iterations as their graphs of stages, one stage at a
/// time, each a child herd process (its own log beside its outputs) that
/// the kernel kills if the scheduler dies. The state file records every
/// stage's start, end and exit status; a finished stage is skipped — and
/// the log says so — so `herd rlhf resume` continues at the first stage
/// that did not finish, and the stages themselves continue inside their
/// work (an annotation batch, a bag, a training job's last checkpoint).
public final class PipelineScheduler {
    public let manifest: PipelineManifest
    public let graph: PipelineGraph
    let log: (String) -> Void
    let lock: PipelineLock
    var state: PipelineState
    var run: String { manifest.output }

    public init(manifest: PipelineManifest, cluster: String?, log: @escaping (String) -> Void) throws {
        self.manifest = manifest
        graph = PipelineGraph(manifest: manifest)
        lock = try PipelineLock(run: manifest.output)
        state = try PipelineState.read(run: manifest.output) ?? PipelineState(manifest: manifest.file, cluster: cluster, target: 0)
        if let cluster { state.cluster = cluster }
        let file = "\(manifest.output)/pipeline.log"
        self.log = { line in
            log(line)
            let fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { return }
            let text = Array("\(ISO8601DateFormatter().string(from: Date())) \(line)\n".utf8)
            _ = write(fd, text, text.count)
            close(fd)
        }
        let text = try? String(contentsOfFile: manifest.file, encoding: .utf8)
        if let before = state.manifestText, let text, before != text {
            // Finished stages keep what they did; the rest follow the manifest as it is now.
            self.log("note: \(manifest.file) has changed since the pipeline was launched; finished stages are kept as they ran")
        }
        if state.manifestText == nil { state.manifestText = text }
    }

    /// The first stage of iterations 0..<n that has not finished, if any.
    func firstUnfinished(before n: Int) throws -> PipelineStage? {
        for i in 0..<n { if let s = try graph.stages(i).first(where: { !state.isFinished($0.id) }) { return s } }
        return nil
    }

    /// Runs iterations `from`...`through` (iteration 1 brings the SFT baseline).
    public func launch(from: Int, through: Int) throws {
        let count = manifest.iterations.count
        for n in [from, through] where n < 1 || n > count { throw PipelineError.noIteration(n, count: count) }
        if from > 1, let s = try firstUnfinished(before: from) {
            throw PipelineError.outOfOrder(asked: PipelineGraph.iterationName(from), unfinished: s.id)
        }
        state.target = max(state.target, through)
        try state.write(run: run)
        try execute(from: from == 1 ? 0 : from, through: through)
    }

    /// Continues at the first unfinished stage, up to the iteration last asked for.
    public func resume() throws {
        guard state.target > 0 else { throw PipelineError.notLaunched(run: run) }
        log("resuming \(manifest.name) through \(PipelineGraph.iterationName(state.target))")
        try execute(from: 0, through: state.target)
    }

    func execute(from: Int, through: Int) throws {
        for n in from...through {
            // The graph is read again after every stage: a stage's outcome
            // can change the ones after it (the health check hands the
            // selection to the annotator).
            var seen = Set<String>()
            while let stage = try graph.stages(n).first(where: { !seen.contains($0.id) }) {
                seen.insert(stage.id)
                if let done = state.stages[stage.id], done.phase == .finished {
                    log(String(format: "%@: finished earlier (%.1f s), skipped", stage.id, done.seconds ?? 0))
                    if stage.name == "evaluate" { try promote(n) }
                    continue
                }
                if stage.name == "evaluate" { try? FileManager.default.removeItem(atPath: graph.promotionFile(n)) }
                do { try runStage(stage) } catch {
                    // The report says why the iteration stopped.
                    if stage.name == "rm-health" { try? PipelineReport(graph: graph).write(through: n, log: log) }
                    throw error
                }
                if stage.name == "evaluate" {
                    try promote(n)
                    try PipelineReport(graph: graph).write(through: n, log: log)
                }
            }
        }
        let result = graph.promoted(try graph.promotions(through: through)).map(\.text)
        log("\(manifest.name): \(PipelineGraph.iterationName(through)) finished; its policies: \(result.joined(separator: ", ")); report in \(run)/report.md")
    }

    /// The gate's decisions on iteration n, written once (`VN/promotion.json`):
    /// decided from the evaluations, so a scheduler killed before writing
    /// them decides the same when it resumes.
    func promote(_ n: Int) throws {
        guard n > 0, !FileManager.default.fileExists(atPath: graph.promotionFile(n)) else { return }
        let earlier = try graph.promotions(through: n - 1)
        guard let record = try graph.decidePromotion(n, earlier: earlier) else { return }
        try JSONFile.write(record, to: graph.promotionFile(n))
        for v in record.verdicts {
            log("\(record.iteration)/\(v.policy): \(v.promoted ? "promoted" : "not promoted; the incumbent stays \(v.incumbent)'s") — \(v.reason)")
        }
    }

    func runStage(_ stage: PipelineStage) throws {
        // A stage whose scheduler was killed: its child dies with it; any
        // process left in its group (mpirun's) is stopped before it runs again.
        if let old = state.stages[stage.id], old.phase == .running, let pid = old.pid { Spawn.stopGroup(pid) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: graph.directory(stage.iteration), withIntermediateDirectories: true)
        for f in stage.files where !(f.keepIfPresent && fm.fileExists(atPath: f.path)) {
            try f.text.write(to: URL(fileURLWithPath: f.path), atomically: true, encoding: .utf8)
        }
        var arguments = stage.arguments
        if stage.isJob, let c = state.cluster { arguments += ["--cluster", c] }
        let exe = PipelineManifest.herdExecutable
        let logFile = "\(graph.directory(stage.iteration))/\(stage.name).log"
        var env = ProcessInfo.processInfo.environment
        env[Spawn.dieWithParentVariable] = String(getpid())
        let attempts = (state.stages[stage.id]?.attempts ?? 0) + 1
        log("\(stage.id): started\(attempts > 1 ? " (attempt \(attempts), continuing its work)" : ""): herd \(arguments.joined(separator: " "))")
        let pid = try Spawn.start(exe, arguments, environment: env, log: logFile, detach: .processGroup)
        state.stages[stage.id] = .init(phase: .running, started: Date().timeIntervalSince1970, finished: nil, pid: pid,
                                       attempts: attempts, command: ["herd"] + arguments, status: nil)
        try state.write(run: run)
        let status = Spawn.wait(pid)
        var record = state.stages[stage.id]!
        record.finished = Date().timeIntervalSince1970
        record.status = status
        record.phase = status == 0 ? .finished : .failed
        state.stages[stage.id] = record
        try state.write(run: run)
        guard status == 0 else {
            let text = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
            let tail = text.split(separator: "\n").suffix(8).joined(separator: "\n")
            log("\(stage.id): failed with status \(status)")
            throw PipelineError.stageFailed(stage: stage.id, status: status, log: logFile, tail: tail)
        }
        log(String(format: "%@: finished in %.1f s", stage.id, record.seconds ?? 0))
    }
}
