import Foundation

/// Runs one stored job to its end: plans it, launches an attempt, ingests
/// the workers' events and heartbeats into the store, detects a dead or
/// hung attempt and relaunches it from the latest checkpoint with backoff
/// (up to the manifest's restart.max_restarts), and turns a cancel into a
/// checkpoint and the state `cancelled`. `herd submit` runs it detached
/// (`herd coordinate`); `herd run --cluster` in the foreground.
public final class Coordinator {
    public let store: JobStore
    public let jobID: Int
    /// The coordinator's own lines (its log, or the terminal).
    let say: (String) -> Void
    /// Rank 0's progress as it arrives (the foreground run prints it).
    public var onEvent: (([String: Any]) -> Void)?
    public var pollInterval = 0.5
    /// When the current attempt was found hung (before it was killed, which under Slurm can take a while).
    private var hungAt: Double?
    public var executable = "/proc/self/exe"

    public init(store: JobStore, jobID: Int, say: @escaping (String) -> Void) {
        self.store = store; self.jobID = jobID; self.say = say
    }

    enum Outcome { case exited(Int32), hung(String), stopped(Int32), requeued(Int) }

    private var cancelRequested: Bool {
        StopSignal.isRequested || ((try? store.job(jobID).cancelRequested) ?? false)
    }

    /// Runs the job to a final state and returns it.
    @discardableResult
    public func run() throws -> JobState {
        var job = try store.job(jobID)
        guard FileManager.default.changeCurrentDirectoryPath(job.workdir) else {
            try finish(.failed, "the job's working directory \(job.workdir) is gone")
            return .failed
        }
        try store.update(jobID, ["coordinator_pid": .int(Int64(getpid()))])
        try FileManager.default.createDirectory(atPath: job.runDir, withIntermediateDirectories: true)
        let events = try EventLog(path: (job.runDir as NSString).appendingPathComponent("events.jsonl"))
        var cluster = try ClusterSpec.load(path: job.cluster)
        say("job \(jobID) \(job.name): coordinator pid \(getpid()), cluster \(cluster.name) (\(cluster.launcher.rawValue)), run directory \(job.runDir)")
        // A Slurm job that Slurm requeued after a node failure: followed, not
        // submitted again, so that the job runs once.
        var followed: LaunchHandle?

        while true {
            job = try store.job(jobID)
            if cancelRequested {
                if let f = followed { try end(f, []) }
                events.write("cancelled", ["job_id": jobID, "step": job.step])
                try finish(.cancelled, "cancelled before attempt \(job.attempt + 1) started")
                return .cancelled
            }
            let manifest = try JobManifest.load(path: job.manifest, overrides: Submission.overrides(job))
            let attempt: Int, plan: Plan, handle: LaunchHandle
            try? FileManager.default.removeItem(atPath: HeartbeatRecord.directory(run: job.runDir))
            if let f = followed {
                // The same attempt, its plan re-placed by the batch script on whatever nodes Slurm gives it.
                attempt = job.attempt; handle = f; followed = nil
                plan = try Plan.read((job.runDir as NSString).appendingPathComponent(Plan.fileName))
                try handle.startNow()
                try store.update(jobID, ["state": .text(JobState.running.rawValue)])
                say("attempt \(attempt): following Slurm job \(handle.id), requeued; it runs again once Slurm has the nodes")
            } else {
                attempt = job.attempt + 1
                let planPath: String
                (plan, planPath) = try writePlan(manifest: manifest, cluster: cluster, job: job)
                switch cluster.launcher {
                case .mpirun: handle = try MPILauncher.start(plan: plan, planPath: planPath, attempt: attempt, cluster: cluster, executable: executable)
                case .slurm: handle = try SlurmLauncher.start(plan: plan, planPath: planPath, attempt: attempt, jobID: jobID,
                                                              cluster: cluster, workdir: job.workdir, executable: executable)
                }
                try store.update(jobID, ["state": .text(JobState.running.rawValue), "attempt": .int(Int64(attempt)),
                                         "launch_id": .text(handle.id), "total_steps": .int(Int64(manifest.steps))])
                events.write("launch", ["job_id": jobID, "attempt": attempt, "launcher": cluster.launcher.rawValue, "launch_id": handle.id,
                                        "world": plan.world, "data": plan.data, "tensor": plan.tensor])
                say("attempt \(attempt): \(cluster.launcher.rawValue) \(handle.id), \(plan.world) ranks (data \(plan.data) × tensor \(plan.tensor)); logs \(AttemptLogs.directory(run: job.runDir, attempt: attempt))")
            }

            let reason: String
            switch try watch(handle, manifest: manifest, world: plan.world, runDir: job.runDir) {
            case .exited(0), .stopped(0):
                let done = try store.job(jobID)
                events.write("succeeded", ["job_id": jobID, "step": done.step])
                try finish(.succeeded, String(format: "finished %d steps, loss %.4f", done.step, done.loss ?? .nan))
                return .succeeded
            case .stopped:
                let latest = CheckpointStore(runDirectory: job.runDir).latest()
                events.write("cancelled", ["job_id": jobID, "checkpoint_step": latest ?? -1])
                try finish(.cancelled, "cancelled; " + (latest.map { "checkpoint at step \($0); herd resume \(jobID) continues from it" } ?? "no checkpoint was written"))
                return .cancelled
            case .exited(let code):
                reason = "attempt \(attempt) failed: \(cluster.launcher.rawValue) exited with status \(code)" + failureDetail(run: job.runDir, attempt: attempt)
            case .hung(let why):
                reason = "attempt \(attempt) hung: \(why)"
            case .requeued(let n):
                reason = "attempt \(attempt): a node failed and Slurm requeued job \(handle.id) (its restart \(n) in Slurm)"
                followed = handle
            }
            say(reason)
            job = try store.job(jobID)
            guard job.restarts < job.maxRestarts else {
                if let f = followed { try end(f, []) }
                events.write("failed", ["job_id": jobID, "reason": reason])
                try finish(.failed, reason + "; gave up after \(job.restarts) restart(s) (restart.max_restarts = \(job.maxRestarts))")
                return .failed
            }
            let restarts = job.restarts + 1
            let from = CheckpointStore(runDirectory: job.runDir).latest()
            let delay = manifest.restart.delay(beforeRestart: restarts)
            try store.recordRestart(jobID, attempt: followed == nil ? attempt + 1 : attempt, reason: reason, fromStep: from)
            try store.update(jobID, ["state": .text(JobState.restarting.rawValue), "restarts": .int(Int64(restarts)), "message": .text(reason)])
            var restart: [String: Any] = ["job_id": jobID, "restart": restarts, "reason": reason, "from_step": from ?? 0, "backoff_s": delay, "launch_id": handle.id]
            if let t = hungAt { restart["hung_at"] = t }
            hungAt = nil
            events.write(followed == nil ? "restart" : "requeue", restart)
            say(String(format: "restart %d of %d in %.1f s, from %@", restarts, job.maxRestarts, delay,
                       from.map { "the checkpoint at step \($0)" } ?? "the start (no checkpoint yet)"))
            let until = Date().timeIntervalSince1970 + delay
            while Date().timeIntervalSince1970 < until && !cancelRequested { Thread.sleep(forTimeInterval: min(pollInterval, delay)) }
            if manifest.restart.shrinkOnNodeLoss, let smaller = try shrink(cluster, manifest: manifest, job: job, events: events) {
                // The requeued job asks for the nodes that are gone: it ends, and a smaller one replaces it.
                if let f = followed {
                    say("cancelling the requeued Slurm job \(f.id): it asks for nodes that are gone")
                    try end(f, [])
                    followed = nil
                }
                cluster = smaller
            }
        }
    }

    /// Before a restart under `restart.on_node_loss: shrink`: the hosts
    /// mpirun cannot start a rank on are left out, and the job goes on with
    /// as many data-parallel ranks as the rest hold (dividing the global
    /// batch); nil when every host answers.
    func shrink(_ cluster: ClusterSpec, manifest: JobManifest, job: JobRecord, events: EventLog) throws -> ClusterSpec? {
        guard Set(cluster.nodes.flatMap(\.hosts)).count > 1 else { return nil }
        let hosts = cluster.nodes.flatMap(\.hosts)
        let rest: ClusterSpec, lost: [String], why: String
        switch cluster.launcher {
        case .mpirun:
            let alive = try NodeProbe.reachable(cluster, timeout: max(5, min(60, manifest.monitor.hangTimeoutSeconds)),
                                                log: (job.runDir as NSString).appendingPathComponent("node-probe.log"))
            lost = Set(hosts).subtracting(alive).sorted()
            rest = cluster.without(Set(lost))
            why = "mpirun cannot start a rank there"
        case .slurm:
            // Slurm places the job; what matters is how many of the partition's nodes it can still use.
            let nodes = try SlurmLauncher.nodes(cluster)
            lost = nodes.unusable
            rest = cluster.keeping(first: min(hosts.count, nodes.usable.count))
            why = "Slurm has \(nodes.usable.count) node(s) up"
        }
        guard !lost.isEmpty, rest.slots < cluster.slots else { return nil }
        let tp = job.tensor
        var data = min(job.data, rest.slots / tp)
        while data > 0 && manifest.batch.sequences % data != 0 { data -= 1 }
        guard data > 0 else {
            throw JobStoreError(message: "lost \(lost.joined(separator: ", ")): the nodes that remain (\(rest.slots) slots) cannot hold one tensor-parallel group of \(tp)")
        }
        try store.update(jobID, ["data": .int(Int64(data))])
        events.write("shrink", ["job_id": jobID, "lost": lost, "hosts": rest.nodes.flatMap(\.hosts), "data": data, "tensor": tp])
        let on = cluster.launcher == .mpirun ? rest.nodes.flatMap(\.hosts).joined(separator: ", ") : "\(rest.nodes.flatMap(\.hosts).count) nodes of Slurm's choosing"
        say("lost \(lost.joined(separator: ", ")) (\(why)): continuing on \(on) at data \(data) × tensor \(tp); the checkpoint reshards")
        return rest
    }

    /// plan.json for this attempt, with the cluster's hosts; every attempt
    /// resumes from the run directory's newest checkpoint if there is one.
    func writePlan(manifest: JobManifest, cluster: ClusterSpec, job: JobRecord) throws -> (Plan, String) {
        let model = try TrainingData.modelShape(manifest: manifest)
        var plan = try PlanReport.make(manifest: manifest, model: model, cluster: cluster).plan
        plan.manifest = job.manifest
        plan.corpusOverride = job.corpusOverride
        plan.stepsOverride = job.stepsOverride
        plan.dataOverride = job.data
        plan.tensorOverride = job.tensor
        plan.output = job.runDir
        plan.resume = true
        try plan.write(to: job.runDir)
        return (plan, (job.runDir as NSString).appendingPathComponent(Plan.fileName))
    }

    /// Follows an attempt until it ends, feeding the store.
    func watch(_ handle: LaunchHandle, manifest: JobManifest, world: Int, runDir: String) throws -> Outcome {
        let tail = EventTail(path: (runDir as NSString).appendingPathComponent("events.jsonl"))
        var tokensPerStep = Double(manifest.batch.sequences * manifest.data.seqLen)
        var stopDeadline: Double?
        let timeout = manifest.monitor.hangTimeoutSeconds, requeues = handle.requeues
        while true {
            let status = try handle.poll()
            if stopDeadline == nil && handle.requeues > requeues { return .requeued(handle.requeues) }
            for e in tail.next() { try ingest(e, tokensPerStep: &tokensPerStep) }
            let beats = HeartbeatRecord.readAll(run: runDir)
            try store.setWorkers(jobID, beats.map {
                WorkerRecord(rank: $0.rank, host: $0.host, pid: Int($0.pid), step: $0.step, phase: $0.phase, heartbeat: $0.time, progress: $0.progressTime)
            })
            if let status { return stopDeadline == nil ? .exited(status) : .stopped(status) }
            let now = Date().timeIntervalSince1970
            if stopDeadline == nil, let since = handle.runningSince,
               let why = HangCheck.check(beats, world: world, runningSince: since, now: now, timeout: timeout) {
                hungAt = now
                try end(handle, beats)
                return .hung(why)
            }
            if stopDeadline == nil && cancelRequested {
                say("cancel: asking every rank to checkpoint and exit")
                try handle.requestStop()
                stopDeadline = now + timeout + 60
            } else if let d = stopDeadline, now > d {
                say("cancel: the ranks did not stop within \(Int(timeout + 60)) s; killing them")
                try end(handle, beats)
                return .stopped(137)
            }
            Thread.sleep(forTimeInterval: pollInterval)
        }
    }

    /// Kills an attempt: the launcher's way, and this machine's ranks by pid
    /// (a stopped rank dies of SIGKILL too). Waits until the launcher is gone.
    func end(_ handle: LaunchHandle, _ beats: [HeartbeatRecord]) throws {
        try handle.kill()
        let here = ProcessInfo.processInfo.hostName
        for b in beats where b.host == here { kill(b.pid, SIGKILL) }
        let until = Date().timeIntervalSince1970 + 30
        while try handle.poll() == nil && Date().timeIntervalSince1970 < until { Thread.sleep(forTimeInterval: 0.2) }
    }

    func ingest(_ e: [String: Any], tokensPerStep: inout Double) throws {
        func num(_ k: String) -> Double? { (e[k] as? NSNumber)?.doubleValue }
        var f: [String: SQLiteValue] = [:]
        switch e["event"] as? String {
        case "start":
            if let s = num("steps") { f["total_steps"] = .int(Int64(s)) }
            if let t = num("tokens_per_step") { tokensPerStep = t }
        case "resume":
            if let s = num("step") { f["step"] = .int(Int64(s)) }
        case "step":
            let job = try store.job(jobID)
            if let s = num("step") {
                f["step"] = .int(Int64(s))
                if let tps = num("tokens_per_s"), tps > 0 {
                    f["tokens_per_s"] = .double(tps)
                    f["eta_s"] = .double(Double(job.totalSteps - Int(s)) * tokensPerStep / tps)
                }
                // A PPO iteration's tokens vary with its answers: its time is the measure.
                if let seconds = num("step_seconds") { f["eta_s"] = .double(Double(job.totalSteps - Int(s)) * seconds) }
            }
            if let l = num("loss") { f["loss"] = .double(l) }
        case "eval":
            if let l = num("val_loss"), l.isFinite { f["val_loss"] = .double(l) }
        case "checkpoint":
            if let s = num("step") { f["checkpoint_step"] = .int(Int64(s)) }
        case "end":
            f["eta_s"] = .double(0)
            if let l = num("train_loss") { f["loss"] = .double(l) }
        default: return
        }
        if !f.isEmpty { try store.update(jobID, f) }
        onEvent?(e)
    }

    /// The reason a rank gave when it aborted, from the attempt's logs.
    func failureDetail(run: String, attempt: Int) -> String {
        let text = (try? String(contentsOfFile: AttemptLogs.launcherFile(run: run, attempt: attempt), encoding: .utf8)) ?? ""
        if let line = text.split(separator: "\n").last(where: { $0.contains("herd worker rank") || $0.contains("mpirun noticed") || $0.contains("error:") }) {
            return " — " + line.trimmingCharacters(in: .whitespaces)
        }
        return ""
    }

    func finish(_ state: JobState, _ message: String) throws {
        try store.update(jobID, ["state": .text(state.rawValue), "message": .text(message)])
        say("job \(jobID): \(state.rawValue): \(message)")
    }
}
