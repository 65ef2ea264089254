import Foundation

/// Why an operation on a stored job was refused: each case says what to do instead.
public enum JobOperationError: Error, CustomStringConvertible, Sendable, Equatable {
    case alreadyEnded(id: Int, state: JobState)
    case stillRunning(id: Int, state: JobState)
    case alreadySucceeded(id: Int, step: Int, total: Int)
    case noCheckpoint(id: Int, runDir: String)
    case workdirGone(id: Int, workdir: String)
    case watched(id: Int, holder: CoordinatorLease)
    case unwatchedRunning(id: Int, attempt: Int)

    public var description: String {
        switch self {
        case let .alreadyEnded(id, state): return "job \(id) has already ended: \(state.rawValue)"
        case let .stillRunning(id, state):
            return "job \(id) is \(state.rawValue); only a failed or cancelled job resumes (herd cancel \(id) first)"
        case let .alreadySucceeded(id, step, total):
            return "job \(id) has already succeeded (\(step) of \(total) steps); nothing to resume"
        case let .noCheckpoint(id, runDir):
            return "job \(id): \(runDir) holds no checkpoint to resume from (herd submit starts the job afresh)"
        case let .workdirGone(id, workdir): return "job \(id): its working directory \(workdir) is gone"
        case let .watched(id, holder): return "job \(id) is already watched by \(holder)"
        case let .unwatchedRunning(id, attempt):
            return "job \(id): attempt \(attempt) still runs without a coordinator; herd adopt \(id) watches it "
                + "(to change its layout, herd cancel \(id) once it is watched, then herd resume \(id) with the new layout)"
        }
    }
}

/// The operations on stored jobs — submit, cancel, resume, and marking a
/// job whose coordinator died — in one place, so that the command line and
/// the HTTP API (herd serve) do exactly the same thing.
public enum JobOperations {
    /// A job whose coordinator died (a reboot, a kill -9): while its attempt
    /// still runs, it stays running and says so (`herd adopt` watches it
    /// again); once the attempt is gone too, it is marked failed, so that
    /// nothing shows a job running that nothing runs.
    public static func reconcile(_ store: JobStore, _ job: JobRecord) -> JobRecord {
        guard !job.state.isFinal, !isWatched(store, job), let pid = job.coordinatorPID else { return job }
        let message: String
        if let attempt = runningAttempt(job) {
            message = "unwatched: its coordinator (pid \(pid)) is gone but attempt \(attempt.attempt) (\(attempt.launcher) \(attempt.id)) still runs; "
                + "herd adopt \(job.id) watches it again"
            if job.message != message { try? store.update(job.id, ["message": .text(message)]) }
        } else {
            message = "its coordinator (pid \(pid)) is gone; herd resume \(job.id) continues from the latest checkpoint"
            try? store.update(job.id, ["state": .text(JobState.failed.rawValue), "message": .text(message)])
        }
        return (try? store.job(job.id)) ?? job
    }

    /// Whether a coordinator watches the job: it holds the lease, or it was
    /// just started and has not taken it yet.
    public static func isWatched(_ store: JobStore, _ job: JobRecord) -> Bool {
        if let lease = try? store.lease(job.id), lease.isLive() { return true }
        return job.coordinatorPID.map { Spawn.isAlive($0) } ?? false
    }

    /// The job's current attempt if it still runs (from RUN/attempt.json).
    public static func runningAttempt(_ job: JobRecord) -> AttemptRecord? {
        let run = RunDirectory(job.runDir)
        guard job.state == .running, let record = AttemptRecord.read(run), record.attempt == job.attempt,
              let cluster = try? ClusterSpec.read(run, orFile: job.cluster),
              let handle = try? AttemptAdoption.handle(record, run: run, cluster: cluster),
              (try? handle.poll()) == .some(nil) else { return nil }
        return record
    }

    /// `herd adopt`: starts a coordinator for a job whose coordinator is
    /// gone; it watches the attempt still running, or relaunches a dead one.
    @discardableResult
    public static func adopt(_ store: JobStore, id: Int) throws -> JobRecord {
        let job = try store.job(id)
        if job.state.isFinal { throw JobOperationError.alreadyEnded(id: id, state: job.state) }
        if let lease = try store.lease(id), lease.isLive() { throw JobOperationError.watched(id: id, holder: lease) }
        if let pid = job.coordinatorPID, Spawn.isAlive(pid) {
            throw JobOperationError.watched(id: id, holder: CoordinatorLease(host: ProcessInfo.processInfo.hostName, pid: pid, expires: 0))
        }
        try startCoordinator(store: store, id: id, runDir: job.runDir)
        return try store.job(id)
    }

    /// Resolves the job and checks it against the cluster exactly as `herd
    /// submit` does, writes the resolved job into its run directory, stores
    /// it queued and returns it with its id (nothing is started). Relative
    /// paths are taken from `directory` (default: this process's).
    public static func store(manifest: String, cluster: String, overrides: JobManifest.Overrides, in store: JobStore,
                             directory: String? = nil) throws -> (Submission, Int) {
        let submission = try Submission.prepare(manifest: manifest, cluster: cluster, overrides: overrides, store: store, base: directory)
        let run = RunDirectory(submission.record.runDir)
        try submission.resolved.write(to: run)
        try submission.cluster.write(to: run)
        return (submission, try store.insert(submission.record))
    }

    /// `herd submit`: stores the job and starts its coordinator detached.
    public static func submit(manifest: String, cluster: String, overrides: JobManifest.Overrides, in store: JobStore,
                              directory: String? = nil) throws -> (Submission, Int) {
        let (submission, id) = try Self.store(manifest: manifest, cluster: cluster, overrides: overrides, in: store, directory: directory)
        try startCoordinator(store: store, id: id, runDir: submission.record.runDir)
        return (submission, id)
    }

    /// Starts `herd coordinate --job ID` (this executable) detached, logging to RUN/coordinator.log.
    public static func startCoordinator(store: JobStore, id: Int, runDir: String) throws {
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var env = ProcessInfo.processInfo.environment
        env["HERD_HOME"] = store.home
        let pid = try Spawn.start(exe, ["coordinate", "--job", String(id)], environment: env,
                                  log: RunDirectory(runDir).coordinatorLog, detach: .session)
        try store.update(id, ["coordinator_pid": .int(Int64(pid))])
    }

    /// `herd cancel`: flags the job in the store and signals its coordinator,
    /// which asks the workers to checkpoint and exit. Returns at once.
    @discardableResult
    public static func requestCancel(_ store: JobStore, id: Int) throws -> JobRecord {
        let job = reconcile(store, try store.job(id))
        if job.state.isFinal { throw JobOperationError.alreadyEnded(id: job.id, state: job.state) }
        try store.update(job.id, ["cancel_requested": .int(1)])
        if isWatched(store, job) {
            if let pid = job.coordinatorPID { kill(pid_t(pid), SIGTERM) }
        } else {
            // Unwatched, its attempt still running: a coordinator adopts it and stops it after a checkpoint.
            try startCoordinator(store: store, id: job.id, runDir: job.runDir)
        }
        return try store.job(id)
    }

    public struct Resumed: Sendable {
        public var job: JobRecord
        public var fromStep: Int
        public var clusterName: String
        /// Ranks of an earlier attempt still running here, stopped first: (rank, pid).
        public var stopped: [(rank: Int, pid: Int32)]
        /// The job was not over: its attempt still ran, and a new coordinator adopted it.
        public var adopted = false
    }

    /// `herd resume`: a failed or cancelled job continues from its latest
    /// checkpoint, on another cluster or layout if asked.
    public static func resume(_ store: JobStore, id: Int, cluster: String? = nil, data: Int? = nil, tensor: Int? = nil) throws -> Resumed {
        let job = reconcile(store, try store.job(id))
        if !job.state.isFinal && !isWatched(store, job) {
            // Its coordinator is gone but its attempt runs on: watched again, nothing relaunched.
            if cluster != nil || data != nil || tensor != nil { throw JobOperationError.unwatchedRunning(id: id, attempt: job.attempt) }
            let adopted = try adopt(store, id: id)
            return Resumed(job: adopted, fromStep: adopted.step, clusterName: (try? ClusterSpec.read(RunDirectory(job.runDir), orFile: job.cluster).name) ?? job.cluster,
                           stopped: [], adopted: true)
        }
        if !job.state.isFinal { throw JobOperationError.stillRunning(id: job.id, state: job.state) }
        if job.state == .succeeded { throw JobOperationError.alreadySucceeded(id: job.id, step: job.step, total: job.totalSteps) }
        // A prepare job's state is its units done (kept in its output), not a checkpoint.
        let preparing = (try? ResolvedJob.read(RunDirectory(job.runDir)))?.manifest.kind == .prepare
        let checkpoints = CheckpointStore(runDirectory: job.runDir)
        guard let step = preparing ? job.step : checkpoints.latest() ?? checkpoints.steps().last else {
            throw JobOperationError.noCheckpoint(id: job.id, runDir: job.runDir)
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: job.workdir, isDirectory: &isDir), isDir.boolValue else {
            throw JobOperationError.workdirGone(id: job.id, workdir: job.workdir)
        }
        // The coordinator that ended the job holds its lease until it has exited, a moment after the
        // final state: the new one must not find it held.
        let until = Date().addingTimeInterval(15)
        while let held = try store.lease(job.id), held.isLive() {
            guard Date() < until else { throw JobOperationError.watched(id: job.id, holder: held) }
            usleep(50_000)
        }
        // The job as it was resolved at submit, on the layout asked for (the checkpoint reshards).
        let run = RunDirectory(job.runDir)
        var resolved = try ResolvedJob.stored(run: run, manifest: job.manifest, workdir: job.workdir)
        resolved.manifest = try resolved.manifest.laidOut(data: data ?? job.data, tensor: tensor ?? job.tensor)
        let clusterPath = cluster.map { Submission.resolveCluster($0, base: job.workdir) } ?? job.cluster
        let submission = try Submission.prepare(resolved, cluster: clusterPath, store: store, workdir: job.workdir, replacing: job.id)
        try submission.cluster.write(to: run)
        let r = submission.record
        // Ranks still beating here belong to an attempt whose coordinator
        // died (it was killed, or the machine's session ended): end them so
        // that two attempts never write one run directory.
        var stopped: [(rank: Int, pid: Int32)] = []
        let now = Date().timeIntervalSince1970, here = ProcessInfo.processInfo.hostName
        for b in HeartbeatRecord.readAll(run: job.runDir)
        where b.host == here && now - b.time < 3 * submission.manifest.monitor.heartbeatSeconds && Spawn.isAlive(Int(b.pid)) {
            kill(b.pid, SIGKILL)
            stopped.append((b.rank, b.pid))
        }
        // The attempt is over: the new coordinator launches its own rather than adopting that one.
        try? FileManager.default.removeItem(atPath: run.attempt)
        try store.recordRestart(job.id, attempt: job.attempt + 1, reason: "resumed by hand (data \(r.data) × tensor \(r.tensor) on \(submission.cluster.name))", fromStep: step)
        try store.update(job.id, ["state": .text(JobState.queued.rawValue), "cluster": .text(r.cluster), "launcher": .text(r.launcher),
                                  "data": .int(Int64(r.data)), "tensor": .int(Int64(r.tensor)), "restarts": .int(0),
                                  "cancel_requested": .int(0), "message": .text("resuming from step \(step)")])
        try startCoordinator(store: store, id: job.id, runDir: job.runDir)
        return Resumed(job: try store.job(job.id), fromStep: step, clusterName: submission.cluster.name, stopped: stopped)
    }
}
