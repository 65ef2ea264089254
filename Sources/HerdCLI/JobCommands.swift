import ArgumentParser
import Foundation
import Herd

/// The job store, or a clear error.
func openStore() -> JobStore {
    do { return try JobStore() } catch { fail(error) }
}

func lookup(_ store: JobStore, _ id: String) -> JobRecord {
    do { return try store.job(named: id) } catch { fail(error) }
}

/// `herd submit JOB --cluster C`: checks everything, stores the job, starts
/// its coordinator in a session of its own (it outlives the terminal) and
/// prints the job id at once.
struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start a job under a coordinator that outlives the terminal; prints its id.")
    @OptionGroup var options: ManifestOptions
    @Option(help: "The cluster: a name in clusters/ or a path.") var cluster: String = "local"

    func run() throws {
        let store = openStore()
        let (submission, id) = try options.store(on: cluster, in: store)
        try startCoordinator(store: store, id: id, runDir: submission.record.runDir)
        print(id)
        FileHandle.standardError.write("herd: job \(id) submitted to \(submission.cluster.name): \(submission.report.plan.world) ranks; herd watch \(id) follows it, herd logs \(id) shows its output\n".data(using: .utf8)!)
    }
}

extension ManifestOptions {
    /// Checks the job against the cluster (or exits with the error) and stores it, queued.
    func store(on cluster: String, in store: JobStore) throws -> (Submission, Int) {
        do {
            return try JobOperations.store(manifest: job, cluster: cluster,
                                           overrides: .init(corpus: corpus, steps: steps, output: output), in: store)
        } catch { fail(error) }
    }
}

/// Starts `herd coordinate --job ID` detached, logging to RUN/coordinator.log.
func startCoordinator(store: JobStore, id: Int, runDir: String) throws {
    try JobOperations.startCoordinator(store: store, id: id, runDir: runDir)
}

/// The detached coordinator of one job (started by submit and resume).
struct Coordinate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Supervise one stored job (started by herd submit).", shouldDisplay: false)
    @Option(help: "The job id.") var job: Int

    func run() throws {
        StopSignal.install()   // SIGTERM to the coordinator is a cancel
        signal(SIGHUP, SIG_IGN)
        let store = openStore()
        let coordinator = Coordinator(store: store, jobID: job) { line in
            print("[\(Date())] \(line)"); fflush(stdout)
        }
        do { try coordinator.run() } catch let held as LeaseHeld {
            // Another coordinator watches the job: this one changes nothing.
            FileHandle.standardError.write("herd: \(held)\n".data(using: .utf8)!)
            print("[\(Date())] \(held)")
            Foundation.exit(3)
        } catch let lost as LeaseLost {
            print("[\(Date())] \(lost)")
            Foundation.exit(3)
        } catch {
            try? store.update(job, ["state": .text(JobState.failed.rawValue), "message": .text("coordinator error: \(error)")])
            fail(error)
        }
    }
}

/// `herd adopt JOB`: a new coordinator for a job whose coordinator is gone.
struct Adopt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch a job whose coordinator is gone: its running attempt is adopted, not restarted; a dead one is relaunched from the checkpoint.")
    @Argument(help: "The job id.") var job: String

    func run() throws {
        let store = openStore()
        let job = lookup(store, self.job)
        let adopted: JobRecord
        do { adopted = try JobOperations.adopt(store, id: job.id) } catch { fail(error) }
        print("job \(job.id): a new coordinator (pid \(adopted.coordinatorPID ?? 0)) watches it; its log is \(RunDirectory(job.runDir).coordinatorLog)")
    }
}

/// Marks jobs whose coordinator died as failed (JobOperations.reconcile).
func reconcile(_ store: JobStore, _ job: JobRecord) -> JobRecord { JobOperations.reconcile(store, job) }

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The jobs in the store, or one job with its workers and restarts.")
    @Argument(help: "A job id (default: every job).") var job: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = openStore()
        let all = job == nil ? try store.jobs() : []
        let jobs = (job.map { [lookup(store, $0)] } ?? all).map { reconcile(store, $0) }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            if job != nil, let j = jobs.first {
                struct Detail: Encodable { var job: JobRecord; var workers: [WorkerRecord]; var restarts: [RestartRecord] }
                print(String(decoding: try enc.encode(Detail(job: j, workers: try store.workers(j.id), restarts: try store.restarts(j.id))), as: UTF8.self))
            } else {
                print(String(decoding: try enc.encode(jobs), as: UTF8.self))
            }
            return
        }
        if jobs.isEmpty { return print("no jobs yet (herd submit JOB --cluster C starts one)") }
        print(JobTable.header)
        for j in jobs { print(JobTable.row(j)) }
        if job != nil, let j = jobs.first {
            if let m = j.message { print("  \(m)") }
            if let rate = j.bytesPerSecond { print(String(format: "  preparing at %.2f MB/s of input (units %d/%d)", rate / 1e6, j.step, j.totalSteps)) }
            for w in try store.workers(j.id) { print("  " + JobTable.worker(w)) }
            for r in try store.restarts(j.id) {
                print("  restart → attempt \(r.attempt) at \(JobTable.clock(r.time)) from step \(r.fromStep.map(String.init) ?? "0"): \(r.reason)")
            }
        }
    }
}

/// How jobs and workers print as text.
enum JobTable {
    /// Columns padded by hand (Foundation's %-20@ does not pad on Linux).
    static func columns(_ cells: [String], _ widths: [Int]) -> String {
        zip(cells, widths + [0]).map { c, w in c.count >= w ? c : c + String(repeating: " ", count: w - c.count) }.joined(separator: " ")
    }
    static let widths = [5, 20, 10, 13, 8, 10, 9, 8]
    static let header = columns(["ID", "NAME", "STATE", "STEP", "LOSS", "TOK/S", "ETA", "RESTARTS", "RUN"], widths)
    static func row(_ j: JobRecord) -> String {
        columns([String(j.id), String(j.name.prefix(20)), j.state.rawValue, "\(j.step)/\(j.totalSteps)",
                 j.loss.map { String(format: "%.4f", $0) } ?? "-", j.tokensPerSecond.map { String(format: "%.0f", $0) } ?? "-",
                 j.state == .running ? (j.etaSeconds.map(duration) ?? "-") : "-", "\(j.restarts)/\(j.maxRestarts)", j.runDir], widths)
    }
    static func worker(_ w: WorkerRecord) -> String {
        let now = Date().timeIntervalSince1970
        let memory = w.residentBytes.map { r in String(format: ", memory %.2f GB (peak %.2f GB)", Double(r) / 1e9, Double(w.peakResidentBytes ?? r) / 1e9) } ?? ""
        return "rank \(w.rank) on \(w.host) pid \(w.pid): step \(w.step) (\(w.phase)), heartbeat \(duration(now - w.heartbeat)) ago, progress \(duration(now - w.progress)) ago" + memory
    }
    static func duration(_ s: Double) -> String {
        if s < 60 { return String(format: "%.1fs", max(0, s)) }
        if s < 3600 { return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) }
        if s < 86400 * 2 { return String(format: "%dh%02dm", Int(s) / 3600, Int(s) % 3600 / 60) }
        return String(format: "%.1fd", s / 86400)
    }
    static func clock(_ t: Double) -> String {
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss"
        return f.string(from: Date(timeIntervalSince1970: t))
    }
    static func bar(_ fraction: Double, width: Int = 30) -> String {
        let n = Int((max(0, min(1, fraction)) * Double(width)).rounded())
        return "[" + String(repeating: "#", count: n) + String(repeating: ".", count: width - n) + "]"
    }
}

/// `herd watch JOB`: progress bars redrawn in place until the job ends.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Follow a job live: step of total, loss, tokens/s, ETA, and each worker's heartbeat.")
    @Argument(help: "The job id.") var job: String
    @Option(help: "Seconds between redraws.") var interval: Double = 1
    @Flag(help: "Print once and return.") var once = false

    func run() throws {
        let store = openStore()
        var job = lookup(store, self.job)
        let tty = isatty(1) != 0
        var drawn = 0
        // A PPO job's iterations carry more than a loss: the last one's figures.
        let events = EventTail(run: RunDirectory(job.runDir), fromStart: true)
        var ppo: RunEvent?
        while true {
            job = reconcile(store, try store.job(job.id))
            for e in events.next() where e.event == .step && e.kl != nil { ppo = e }
            var lines = [String(format: "job %d %@ — %@%@", job.id, job.name, job.state.rawValue,
                                job.restarts > 0 ? " (restarts \(job.restarts)/\(job.maxRestarts))" : "")]
            let fraction = job.totalSteps > 0 ? Double(job.step) / Double(job.totalSteps) : 0
            lines.append(String(format: "%@ %3.0f%%  step %d/%d  loss %@  %@ tok/s  ETA %@", JobTable.bar(fraction), fraction * 100,
                                job.step, job.totalSteps, job.loss.map { String(format: "%.4f", $0) } ?? "-",
                                job.tokensPerSecond.map { String(format: "%.0f", $0) } ?? "-",
                                job.state == .running ? (job.etaSeconds.map(JobTable.duration) ?? "-") : "-"))
            if let rate = job.bytesPerSecond {
                lines.append(String(format: "preparing: units %d/%d  %.2f MB/s of input  %.0f tokens/s", job.step, job.totalSteps, rate / 1e6, job.tokensPerSecond ?? 0))
            }
            if let e = ppo {
                func num(_ x: Double?) -> Double { x ?? .nan }
                lines.append(String(format: "PPO: reward %.4f  KL %.4f  policy loss %.4f  value loss %.4f  clip %.3f  entropy %.3f  length %.1f",
                                    num(e.reward), num(e.kl), num(e.policyLoss), num(e.valueLoss), num(e.clipFraction), num(e.entropy), num(e.responseLength)))
            }
            for w in try store.workers(job.id) {
                lines.append("  " + JobTable.worker(w) + " " + JobTable.bar(job.totalSteps > 0 ? Double(w.step) / Double(job.totalSteps) : 0, width: 12))
            }
            if let m = job.message { lines.append("  " + m) }
            if tty && drawn > 0 { print("\u{1B}[\(drawn)A", terminator: "") }
            for l in lines { print(tty ? l + "\u{1B}[K" : l) }
            if tty { for _ in lines.count..<max(lines.count, drawn) { print("\u{1B}[K") } }
            drawn = max(lines.count, drawn)
            fflush(stdout)
            if job.state.isFinal || once { break }
            Thread.sleep(forTimeInterval: interval)
        }
        if job.state == .failed { throw ExitCode(1) }
    }
}

/// `herd logs JOB [--rank N] [--follow]`.
struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A job's output: one rank's (default rank 0) of the latest attempt, or the coordinator's.")
    @Argument(help: "The job id.") var job: String
    @Option(help: "This rank's output.") var rank: Int = 0
    @Option(help: "This attempt (default: the latest).") var attempt: Int?
    @Flag(help: "The coordinator's log instead (launches, failures, restarts).") var coordinator = false
    @Flag(help: "Its standard error instead of its standard output.") var stderr = false
    @Flag(help: "Keep printing as the job writes, until it ends.") var follow = false

    func run() throws {
        let store = openStore()
        var job = lookup(store, self.job)
        guard rank >= 0 && rank < job.world else {
            fail(ValidationError("--rank: job \(job.id) has ranks 0..<\(job.world), got \(rank)"))
        }
        var offset: UInt64 = 0
        var shownAttempt = attempt ?? job.attempt
        while true {
            let path = coordinator ? RunDirectory(job.runDir).coordinatorLog
                : AttemptLogs.rankFile(run: job.runDir, attempt: shownAttempt, rank: rank, stream: stderr ? "stderr" : "stdout")
            if let h = FileHandle(forReadingAtPath: path) {
                h.seek(toFileOffset: offset)
                let data = h.readDataToEndOfFile()
                offset += UInt64(data.count)
                FileHandle.standardOutput.write(data)
                try? h.close()
            } else if !follow {
                fail(ValidationError("no log yet at \(path) (job \(job.id) is \(job.state.rawValue), attempt \(shownAttempt))"))
            }
            guard follow else { return }
            if job.state.isFinal { return }
            Thread.sleep(forTimeInterval: 0.5)
            job = reconcile(store, try store.job(job.id))
            // A restart starts a new attempt: follow it.
            if attempt == nil && !coordinator && job.attempt != shownAttempt {
                print("--- attempt \(job.attempt) ---")
                shownAttempt = job.attempt
                offset = 0
            }
        }
    }
}

/// `herd cancel JOB`: the workers checkpoint and exit; the job ends `cancelled`.
struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop a job: its workers write a checkpoint and exit; the state becomes cancelled.")
    @Argument(help: "The job id.") var job: String
    @Flag(help: "Return at once instead of waiting for the checkpoint.") var noWait = false
    @Option(help: "Seconds to wait for the workers to stop.") var timeout: Double = 900

    func run() throws {
        let store = openStore()
        var job = lookup(store, self.job)
        do { job = try JobOperations.requestCancel(store, id: job.id) } catch { fail(error) }
        if noWait { return print("job \(job.id): cancel requested") }
        let until = Date().timeIntervalSince1970 + timeout
        while !job.state.isFinal && Date().timeIntervalSince1970 < until {
            Thread.sleep(forTimeInterval: 0.3)
            job = reconcile(store, try store.job(job.id))
        }
        print("job \(job.id): \(job.state.rawValue)\(job.message.map { " — \($0)" } ?? "")")
        if job.state != .cancelled { throw ExitCode(1) }
    }
}

/// `herd resume JOB [--cluster C] [--data N --tensor M]`.
struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue an ended job from its latest checkpoint, on another cluster or layout if asked (checkpoints reshard).")
    @Argument(help: "The job id.") var job: String
    @Option(help: "Run on this cluster instead (a name in clusters/ or a path).") var cluster: String?
    @Option(help: "Data-parallel ranks (default: as before).") var data: Int?
    @Option(help: "Tensor-parallel ranks (default: as before).") var tensor: Int?

    func run() throws {
        let store = openStore()
        let job = lookup(store, self.job)
        let resumed: JobOperations.Resumed
        do { resumed = try JobOperations.resume(store, id: job.id, cluster: cluster, data: data, tensor: tensor) } catch { fail(error) }
        for s in resumed.stopped { print("job \(job.id): stopped rank \(s.rank) (pid \(s.pid)), left running by its coordinator") }
        let r = resumed.job
        if resumed.adopted {
            return print("job \(job.id): attempt \(r.attempt) still runs (step \(r.step)); a new coordinator (pid \(r.coordinatorPID ?? 0)) adopts it, nothing is relaunched")
        }
        print("job \(job.id): resuming from the checkpoint at step \(resumed.fromStep) with \(r.world) ranks (data \(r.data) × tensor \(r.tensor)) on \(resumed.clusterName)")
    }
}

/// `herd run JOB --cluster C`: what submit does, in this process and the
/// foreground — progress on the terminal, Ctrl-C a cancel (checkpoint first).
func superviseInForeground(_ options: ManifestOptions, cluster: String) throws -> Never {
    let store = openStore()
    let (submission, id) = try options.store(on: cluster, in: store)
    StopSignal.install()
    let coordinator = Coordinator(store: store, jobID: id) { print("herd: \($0)"); fflush(stdout) }
    coordinator.onEvent = { e in
        func num(_ x: Double?) -> Double { x ?? .nan }
        switch e.event {
        case .step:
            print(String(format: "step %d/%d | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s", e.step ?? 0,
                         submission.manifest.steps, num(e.loss), num(e.lr), num(e.gradNorm), num(e.tokensPerSecond)))
        case .eval: print(String(format: "step %d | held-out loss %.4f", e.step ?? 0, num(e.validationLoss)))
        case .resume: print(submission.manifest.kind == .prepare ? "\(e.step ?? 0) unit(s) already prepared" : "resumed at step \(e.step ?? 0)")
        case .unit:
            print(String(format: "unit %d (%@) on rank %d: %.2f MB, %d tokens in %.2f s", e.unit ?? 0, ((e.path ?? "") as NSString).lastPathComponent,
                         e.rank ?? 0, Double(e.bytes ?? 0) / 1e6, e.tokens ?? 0, num(e.seconds)))
        case .merge:
            print(String(format: "merged %d unit(s) into %@ in %.2f s: %d documents, %d tokens, %d duplicates dropped", e.step ?? 0, e.path ?? "",
                         num(e.seconds), e.documents ?? 0, e.tokens ?? 0, e.duplicates ?? 0))
        default: return
        }
        fflush(stdout)
    }
    let state: JobState
    do { state = try coordinator.run() } catch let lost as LeaseLost {
        // Another coordinator watches the job now: it is not this one's to fail.
        print("herd: \(lost)")
        Foundation.exit(3)
    } catch {
        try? store.update(id, ["state": .text(JobState.failed.rawValue), "message": .text("coordinator error: \(error)")])
        fail(error)
    }
    switch state {
    case .succeeded: Foundation.exit(0)
    case .cancelled: Foundation.exit(143)
    default: Foundation.exit(1)
    }
}
