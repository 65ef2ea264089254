import Foundation

/// Runs one stored job to its end: plans it, launches an attempt, ingests
/// the workers' events and heartbeats into the store, detects a dead or
/// hung attempt and relaunches it from the latest checkpoint with backoff
/// (up to the manifest's restart.max_restarts), and turns a cancel into a
/// checkpoint and the state `cancelled`. `herd submit` runs it detached
/// (`herd coordinate`); `herd run --cluster` in the foreground.
///
/// One coordinator per job: it holds the job's lease in the store while it
/// runs (`CoordinatorLease`). One started for a job whose coordinator died
/// adopts the attempt that is still running (RUN/attempt.json) and watches
/// it as if it had started it; only a dead or hung attempt is relaunched.
public final class Coordinator {
    public let store: JobStore
    public let jobID: Int
    /// The coordinator's own lines (its log, or the terminal).
    let say: (String) -> Void
    /// Rank 0's progress as it arrives (the foreground run prints it).
    public var onEvent: ((RunEvent) -> Void)?
    public var pollInterval = 0.5
    /// When the current attempt was found hung (before it was killed, which under Slurm can take a while).
    private var hungAt: Double?
    public var executable = "/proc/self/exe"
    /// How long the job's lease lasts between renewals (a renewal every sixth of it).
    public var leaseSeconds = CoordinatorLease.defaultSeconds
    /// Set by the lease's renewal thread when another coordinator took the job.
    private let leaseLost = LockedFlag()
    /// Runs commands on the cluster's other nodes (killing their ranks).
    private var agent: RemoteAgent?
    /// How ranks report (HERD_HEARTBEATS; datagrams by default).
    public var heartbeatTransport = HeartbeatTransport.configured
    /// Where ranks send heartbeats, while this coordinator runs (nil: files).
    private var endpoint: HeartbeatEndpoint?
    /// A prepare job's progress in this attempt, from its ranks' unit events.
    private var preparation = PreparationTally()
    /// A checkpoint of this attempt found no space (a rank's checkpoint_failed event; DiskSpaceWait).
    var diskShortage: DiskShortage?

    public init(store: JobStore, jobID: Int, say: @escaping (String) -> Void) {
        self.store = store; self.jobID = jobID; self.say = say
    }

    private var cancelRequested: Bool {
        StopSignal.isRequested || ((try? store.job(jobID).cancelRequested) ?? false)
    }

    /// Runs the job to a final state and returns it. Throws `LeaseHeld`,
    /// touching nothing, when another coordinator watches the job.
    @discardableResult
    public func run() throws -> JobState {
        try store.acquireLease(jobID, seconds: leaseSeconds)
        let renewal = renewLease()
        defer {
            renewal.cancel()
            if !leaseLost.value { try? store.releaseLease(jobID) }
        }
        var job = try store.job(jobID)
        // A supervisor restarting a coordinator whose job has ended: nothing to run again.
        if job.state.isFinal {
            say("job \(jobID) has already ended: \(job.state.rawValue)")
            return job.state
        }
        guard FileManager.default.changeCurrentDirectoryPath(job.workdir) else {
            try finish(.failed, "the job's working directory \(job.workdir) is gone")
            return .failed
        }
        try store.update(jobID, ["coordinator_pid": .int(Int64(getpid()))])
        try FileManager.default.createDirectory(atPath: job.runDir, withIntermediateDirectories: true)
        let run = RunDirectory(job.runDir)
        let events = try EventLog(run: run)
        var cluster = try ClusterSpec.read(run, orFile: job.cluster)
        agent = RemoteAgent(cluster: cluster)
        if heartbeatTransport == .network {
            do { endpoint = try HeartbeatEndpoint(run: run) } catch { say("\(error); the ranks' heartbeat files are read instead") }
        }
        defer { endpoint?.close() }
        // What the job was submitted on: an elastic job shrinks from it and grows back to it.
        let full = cluster, fullData = job.data
        say("job \(jobID) \(job.name): coordinator pid \(getpid()), cluster \(cluster.name) (\(cluster.launcher.rawValue)), run directory \(job.runDir)")
        // A Slurm job that Slurm requeued after a node failure: followed, not
        // submitted again, so that the job runs once.
        var followed: LaunchHandle?
        // The attempt a coordinator before this one started, if it can be watched from here.
        var adopted = try adoptableAttempt(job, run: run, cluster: cluster)

        while true {
            job = try store.job(jobID)
            // An adopted attempt is stopped as any watched one is: checkpoint first (watch does it).
            if cancelRequested && adopted == nil {
                if let f = followed { try end(f, []) }
                var e = RunEvent.coordinator(.cancelled, job: jobID)
                e.step = job.step
                events.write(e)
                try finish(.cancelled, "cancelled before attempt \(job.attempt + 1) started")
                return .cancelled
            }
            // The job as resolved at submit, on the layout the store holds now (a resume or a shrink changes it).
            let resolved = try ResolvedJob.stored(run: run, manifest: job.manifest, workdir: job.workdir)
            var manifest = try resolved.manifest.laidOut(data: job.data, tensor: job.tensor)
            manifest.output = job.runDir
            let attempt: Int, plan: Plan, handle: LaunchHandle
            if let a = adopted {
                // Watched from where its first coordinator left it: no launch, no restart counted.
                attempt = job.attempt; handle = a; adopted = nil
                plan = try Plan.read(run.plan)
                var e = RunEvent.coordinator(.adopt, job: jobID)
                e.attempt = attempt; e.launcher = cluster.launcher.rawValue; e.launchID = handle.id; e.step = job.step
                events.write(e)
                say("attempt \(attempt): adopted \(cluster.launcher.rawValue) \(handle.id), left running when its coordinator \(job.coordinatorPID.map { "(pid \($0)) " } ?? "")went away; watching it")
            } else if let f = followed {
                try forgetRanks(run)
                // The same attempt, its plan re-placed by the batch script on whatever nodes Slurm gives it.
                attempt = job.attempt; handle = f; followed = nil
                plan = try Plan.read(run.plan)
                try handle.startNow()
                try store.update(jobID, ["state": .text(JobState.running.rawValue)])
                say("attempt \(attempt): following Slurm job \(handle.id), requeued; it runs again once Slurm has the nodes")
            } else {
                try forgetRanks(run)
                attempt = job.attempt + 1
                let planPath: String
                (plan, planPath) = try writePlan(manifest: manifest, model: resolved.model, cluster: cluster, job: job)
                switch cluster.launcher {
                case .mpirun: handle = try MPILauncher.start(plan: plan, planPath: planPath, attempt: attempt, cluster: cluster, executable: executable)
                case .slurm: handle = try SlurmLauncher.start(plan: plan, planPath: planPath, attempt: attempt, jobID: jobID,
                                                              cluster: cluster, workdir: job.workdir, executable: executable)
                }
                try store.update(jobID, ["state": .text(JobState.running.rawValue), "attempt": .int(Int64(attempt)),
                                         "launch_id": .text(handle.id), "total_steps": .int(Int64(manifest.steps))])
                try AttemptRecord(attempt: attempt, launcher: cluster.launcher.rawValue, id: handle.id,
                                  processStart: (handle as? MPIJob).flatMap { AttemptRecord.processStart(Int($0.pid)) }).write(to: run)
                var e = RunEvent.coordinator(.launch, job: jobID)
                e.attempt = attempt; e.launcher = cluster.launcher.rawValue; e.launchID = handle.id
                e.world = plan.world; e.data = plan.data; e.tensor = plan.tensor
                events.write(e)
                say("attempt \(attempt): \(cluster.launcher.rawValue) \(handle.id), \(plan.world) ranks (data \(plan.data) × tensor \(plan.tensor)); logs \(AttemptLogs.directory(run: job.runDir, attempt: attempt))")
            }

            var regrow: NodeReturnWatch?
            if manifest.restart.shrinkOnNodeLoss && manifest.restart.growCheckSeconds > 0 && job.data < fullData {
                let missing = Set(full.hosts).subtracting(cluster.hosts)
                let (tensor, batch, timeout) = (job.tensor, manifest.batch.sequences, probeTimeout(manifest))
                let log = run.nodeProbeLog
                regrow = NodeReturnWatch(interval: manifest.restart.growCheckSeconds, currentData: job.data) {
                    try ElasticLayout.fit(full, probe: missing, tensor: tensor, maxData: fullData, batch: batch, timeout: timeout, log: log)
                }
            }
            let outcome = try watch(handle, manifest: manifest, world: plan.world, runDir: job.runDir, regrow: regrow)
            if let endpoint {
                // Whether the ranks reach this host: a site whose network drops the datagrams learns it here.
                let heard = endpoint.records().count, a = endpoint.address
                say("attempt \(attempt): \(heard) of \(plan.world) ranks heartbeat to \(a.host) port \(a.port) over UDP"
                    + (heard < plan.world ? "; the others' files were read" : ""))
            }
            job = try store.job(jobID)
            var detail = ""
            if case .exited = outcome { detail = failureDetail(run: job.runDir, attempt: attempt) }
            let context = AttemptDecision.Context(attempt: attempt, launcher: cluster.launcher.rawValue, launchID: handle.id,
                                                  restarts: job.restarts, maxRestarts: job.maxRestarts, policy: manifest.restart,
                                                  hosts: Set(full.hosts).count, failureDetail: detail,
                                                  diskFull: takeDiskShortage(after: outcome, run: job.runDir))
            let restart: AttemptDecision.Restart
            switch AttemptDecision.decide(outcome, context) {
            case .succeed:
                var e = RunEvent.coordinator(.succeeded, job: jobID)
                e.step = job.step
                events.write(e)
                try finish(.succeeded, manifest.preparation.map { "prepared \(job.step) unit(s) into \($0.out)" }
                    ?? String(format: "finished %d steps, loss %.4f", job.step, job.loss ?? .nan))
                return .succeeded
            case .cancel:
                let latest = CheckpointStore(runDirectory: job.runDir).latest()
                var e = RunEvent.coordinator(.cancelled, job: jobID)
                e.checkpointStep = latest ?? -1
                events.write(e)
                try finish(.cancelled, "cancelled; " + (latest.map { "checkpoint at step \($0); herd resume \(jobID) continues from it" } ?? "no checkpoint was written"))
                return .cancelled
            case .grow(let fit):
                // Not a failure: the ranks checkpointed on request; relaunch larger, no restart counted.
                cluster = try relayout(fit, from: cluster, job: job, events: events)
                continue
            case .giveUp(let reason):
                say(reason)
                if case .requeued = outcome { try end(handle, []) }   // Slurm would run it again
                var e = RunEvent.coordinator(.failed, job: jobID)
                e.reason = reason
                events.write(e)
                try finish(.failed, reason + "; gave up after \(job.restarts) restart(s) (restart.max_restarts = \(job.maxRestarts))")
                return .failed
            case .restart(let r):
                restart = r
            case .waitForSpace(let shortage):
                // Nothing is wrong with the job: relaunch from LATEST once there is room, no restart counted.
                try waitForSpace(shortage, runDir: job.runDir, cancelled: { self.cancelRequested })
                continue
            }
            if restart.followsRequeue { followed = handle }
            say(restart.reason)
            let (reason, restarts, delay) = (restart.reason, restart.number, restart.delaySeconds)
            let from = CheckpointStore(runDirectory: job.runDir).latest()
            try store.recordRestart(jobID, attempt: followed == nil ? attempt + 1 : attempt, reason: reason, fromStep: from)
            try store.update(jobID, ["state": .text(JobState.restarting.rawValue), "restarts": .int(Int64(restarts)), "message": .text(reason)])
            var event = RunEvent.coordinator(followed == nil ? .restart : .requeue, job: jobID)
            event.restart = restarts; event.reason = reason; event.fromStep = from ?? 0
            event.backoffSeconds = delay; event.launchID = handle.id; event.hungAt = hungAt
            hungAt = nil
            events.write(event)
            say(String(format: "restart %d of %d in %.1f s, from %@", restarts, job.maxRestarts, delay,
                       manifest.kind == .prepare ? "the units already prepared" : from.map { "the checkpoint at step \($0)" } ?? "the start (no checkpoint yet)"))
            let until = Date().timeIntervalSince1970 + delay
            while Date().timeIntervalSince1970 < until && !cancelRequested { Thread.sleep(forTimeInterval: min(pollInterval, delay)) }
            if restart.probeNodes {
                let fit = try ElasticLayout.fit(full, tensor: job.tensor, maxData: fullData, batch: manifest.batch.sequences,
                                                timeout: probeTimeout(manifest), log: run.nodeProbeLog)
                let next = try relayout(fit, from: cluster, job: job, events: events)
                if next.slots != cluster.slots, let f = followed {
                    // The requeued job asks for the old number of nodes: it ends, and one of the new layout replaces it.
                    say("cancelling the requeued Slurm job \(f.id): it asks for \(Set(cluster.hosts).count) nodes, the job now runs on \(Set(next.hosts).count)")
                    try end(f, [])
                    followed = nil
                }
                cluster = next
            }
        }
    }

    /// How long a node probe waits for a silent host.
    func probeTimeout(_ manifest: JobManifest) -> Double { max(5, min(60, manifest.monitor.hangTimeoutSeconds)) }

    /// Moves an elastic job (`restart.on_node_loss: shrink`) to the layout
    /// `fit` found: fewer data-parallel ranks on the nodes that answer, or
    /// more once lost ones are back (the checkpoint reshards). Returns the
    /// cluster the job runs on next (`from` when nothing changes).
    func relayout(_ fit: NodeFit, from cluster: ClusterSpec, job: JobRecord, events: EventLog) throws -> ClusterSpec {
        let hosts = fit.cluster.hosts
        guard fit.data != job.data || hosts != cluster.hosts else { return cluster }
        let tp = job.tensor, grew = fit.data > job.data
        try store.update(jobID, ["data": .int(Int64(fit.data))])
        var e = RunEvent.coordinator(grew ? .grow : .shrink, job: jobID)
        e.lost = fit.lost; e.hosts = hosts; e.data = fit.data; e.tensor = tp
        events.write(e)
        let on = cluster.launcher == .mpirun ? hosts.joined(separator: ", ") : "\(hosts.count) nodes of Slurm's choosing"
        if grew {
            say("nodes back (\(fit.lost.isEmpty ? "all of them" : "still lost: " + fit.lost.joined(separator: ", "))): growing to \(on) at data \(fit.data) × tensor \(tp); the checkpoint reshards")
        } else {
            say("lost \(fit.lost.joined(separator: ", ")) (\(fit.why)): continuing on \(on) at data \(fit.data) × tensor \(tp); the checkpoint reshards")
        }
        return fit.cluster
    }

    /// plan.json for this attempt, with the cluster's hosts; every attempt
    /// resumes from the run directory's newest checkpoint if there is one.
    func writePlan(manifest: JobManifest, model: LlamaConfig, cluster: ClusterSpec, job: JobRecord) throws -> (Plan, String) {
        var plan = try PlanReport.make(manifest: manifest, model: model, cluster: cluster).plan
        plan.output = job.runDir
        plan.resume = true
        try plan.write(to: job.runDir)
        return (plan, RunDirectory(job.runDir).plan)
    }

    /// Follows an attempt until it ends, feeding the store.
    func watch(_ handle: LaunchHandle, manifest: JobManifest, world: Int, runDir: String, regrow: NodeReturnWatch? = nil) throws -> AttemptOutcome {
        let tail = EventTail(run: RunDirectory(runDir))
        var tokensPerStep = Double(manifest.batch.sequences * manifest.data.seqLen)
        var stopDeadline: Double?
        let timeout = manifest.monitor.hangTimeoutSeconds, requeues = handle.requeues
        var grown: NodeFit?
        let interval = manifest.monitor.heartbeatSeconds
        let collector = HeartbeatCollector(run: runDir, endpoint: endpoint, fileAfter: 2 * interval + pollInterval)
        let publisher = WorkerPublisher(store: store, jobID: jobID, refresh: WorkerHealth.staleAfter(heartbeatSeconds: interval) / 3)
        while true {
            if leaseLost.value { throw LeaseLost(job: jobID, holder: try store.lease(jobID)) }
            let status = try handle.poll()
            if stopDeadline == nil && handle.requeues > requeues { return .requeued(handle.requeues) }
            for e in tail.next() { try ingest(e, tokensPerStep: &tokensPerStep) }
            let beats = collector.collect(world: world)
            try publisher.publish(beats)
            if let status {
                if let grown { return .regrow(status, grown) }
                return stopDeadline == nil ? .exited(status) : .stopped(status)
            }
            let now = Date().timeIntervalSince1970
            if stopDeadline == nil, let since = handle.runningSince,
               let why = HangCheck.check(beats, world: world, runningSince: since, now: now, timeout: timeout) {
                hungAt = now
                try end(handle, beats)
                return .hung(why)
            }
            if stopDeadline == nil, !cancelRequested, let fit = regrow?.larger() {
                say("lost nodes are back: asking every rank to checkpoint and stop, to go on at data \(fit.data)")
                try handle.requestStop()
                stopDeadline = now + timeout + 60
                grown = fit
            } else if stopDeadline == nil && cancelRequested {
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

    /// Kills an attempt: the launcher's way, this machine's ranks by pid (a
    /// stopped rank dies of SIGKILL too), and under mpirun the ranks of other
    /// nodes through the cluster's agent — mpirun's group kill does not reach
    /// them, and a partitioned node's daemon never hears of it. Waits until
    /// the launcher is gone.
    func end(_ handle: LaunchHandle, _ beats: [HeartbeatRecord]) throws {
        try handle.kill()
        let here = ProcessInfo.processInfo.hostName
        for b in beats where b.host == here { kill(b.pid, SIGKILL) }
        let remote = beats.filter { $0.host != here && $0.phase != "done" }.map { (host: $0.host, pid: $0.pid) }
        if handle is MPIJob || handle is AdoptedMPIJob, !remote.isEmpty, let agent {
            agent.kill(remote, timeout: 10)
            say("killed \(remote.count) rank(s) on \(Set(remote.map(\.host)).sorted().joined(separator: ", ")) through \(agent.command[0])")
        }
        let until = Date().timeIntervalSince1970 + 30
        while try handle.poll() == nil && Date().timeIntervalSince1970 < until { Thread.sleep(forTimeInterval: 0.2) }
    }

    func ingest(_ e: RunEvent, tokensPerStep: inout Double) throws {
        var f: [String: SQLiteValue] = [:]
        switch e.event {
        case .start:
            if let s = e.steps { f["total_steps"] = .int(Int64(s)) }
            if let t = e.tokensPerStep { tokensPerStep = Double(t) }
            if e.jobKind == JobManifest.Kind.prepare.rawValue {
                preparation = PreparationTally(inputBytes: e.bytes ?? 0, since: e.time ?? Date().timeIntervalSince1970)
                f["step"] = .int(0)
            }
        case .resume:
            if let s = e.step { f["step"] = .int(Int64(s)) }
            if let b = e.bytes { preparation.units = e.step ?? 0; preparation.bytesBefore = b }
        case .unit:
            preparation.add(e)
            f = preparation.fields(now: e.time ?? Date().timeIntervalSince1970)
        case .merge:
            if let s = e.step { f["step"] = .int(Int64(s)) }
        case .step:
            let job = try store.job(jobID)
            if let s = e.step {
                f["step"] = .int(Int64(s))
                if let tps = e.tokensPerSecond, tps > 0 {
                    f["tokens_per_s"] = .double(tps)
                    f["eta_s"] = .double(Double(job.totalSteps - s) * tokensPerStep / tps)
                }
                // A PPO iteration's tokens vary with its answers: its time is the measure.
                if let seconds = e.stepSeconds { f["eta_s"] = .double(Double(job.totalSteps - s) * seconds) }
            }
            if let l = e.loss { f["loss"] = .double(l) }
        case .eval:
            if let l = e.validationLoss { f["val_loss"] = .double(l) }
        case .checkpoint:
            if let s = e.step { f["checkpoint_step"] = .int(Int64(s)) }
        case .checkpointFailed:
            diskShortage = DiskShortage(event: e) ?? diskShortage
        case .end:
            f["eta_s"] = .double(0)
            if let s = e.step { f["step"] = .int(Int64(s)) }
            if let l = e.trainLoss { f["loss"] = .double(l) }
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

    /// A new attempt: the last one's heartbeats, files and workers rows go.
    func forgetRanks(_ run: RunDirectory) throws {
        try? FileManager.default.removeItem(atPath: run.heartbeats)
        endpoint?.reset()
        try store.setWorkers(jobID, [])
    }

    /// The job's current attempt, started by an earlier coordinator, as a
    /// handle to watch (nil: none, or it cannot be watched from here). An
    /// mpirun on another host is killed there through the agent, so that it
    /// never runs beside the attempt this coordinator launches.
    func adoptableAttempt(_ job: JobRecord, run: RunDirectory, cluster: ClusterSpec) throws -> LaunchHandle? {
        // A job between attempts (restarting) has no attempt left to watch: its restart was already counted.
        guard job.state == .running, job.attempt > 0, let record = AttemptRecord.read(run), record.attempt == job.attempt,
              record.launcher == cluster.launcher.rawValue else { return nil }
        if let handle = try AttemptAdoption.handle(record, run: run, cluster: cluster) {
            if let status = try handle.poll() {
                say("attempt \(record.attempt) (\(record.launcher) \(record.id)) ended while no coordinator watched it (status \(status))")
            }
            return handle
        }
        if let pgid = Int32(record.id), let agent {
            say("attempt \(record.attempt): mpirun \(record.id) ran on \(record.host), which this coordinator cannot watch; killing it there")
            _ = agent.run("kill -9 -- -\(pgid) 2>/dev/null; true", on: record.host, timeout: 10)
        }
        return nil
    }

    /// Renews the lease every sixth of its length on a thread of its own (a
    /// long node probe or kill must not let it lapse); notes when another
    /// coordinator has taken the job.
    private func renewLease() -> DispatchWorkItem {
        let (store, id, seconds, lost) = (store, jobID, leaseSeconds, leaseLost)
        let work = DispatchWorkItem {}
        Thread.detachNewThread {
            while !work.isCancelled {
                Thread.sleep(forTimeInterval: seconds / 6)
                if work.isCancelled { return }
                if (try? store.renewLease(id, seconds: seconds)) == false { lost.set(); return }
            }
        }
        return work
    }
}

/// Another coordinator took the job while this one was not renewing its
/// lease (stopped for longer than the lease): this one leaves the attempt alone.
public struct LeaseLost: Error, CustomStringConvertible, Sendable {
    public var job: Int
    public var holder: CoordinatorLease?
    public var description: String {
        "job \(job): this coordinator's lease lapsed and \(holder.map(\.description) ?? "another coordinator") took the job; leaving it alone"
    }
}

/// A flag one thread sets and another reads.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var value: Bool { lock.lock(); defer { lock.unlock() }; return flag }
    func set() { lock.lock(); flag = true; lock.unlock() }
}

/// A prepare job's progress over one attempt, summed from its ranks' unit
/// events: units done, input bytes done before and during the attempt, and
/// the rates and ETA the store shows (`herd status`, `herd watch`, /metrics).
struct PreparationTally {
    var inputBytes = 0
    var since = 0.0
    var units = 0
    var bytesBefore = 0
    var bytes = 0
    var tokens = 0

    mutating func add(_ e: RunEvent) {
        units += 1
        bytes += e.bytes ?? 0
        tokens += e.tokens ?? 0
    }

    func fields(now: Double) -> [String: SQLiteValue] {
        var f: [String: SQLiteValue] = ["step": .int(Int64(units))]
        let seconds = now - since
        guard seconds > 0, bytes > 0 else { return f }
        let rate = Double(bytes) / seconds
        f["bytes_per_s"] = .double(rate)
        f["tokens_per_s"] = .double(Double(tokens) / seconds)
        f["eta_s"] = .double(Double(max(0, inputBytes - bytesBefore - bytes)) / rate)
        return f
    }
}
