import Foundation

/// Starts a job's ranks with OpenMPI's `mpirun` on this machine: one
/// `herd worker --plan PLAN` process per rank of the plan. mpirun ends the
/// whole job when any rank exits abnormally (a signal, MPI_Abort, a
/// non-zero exit), so no rank is left waiting in a collective.
public enum MPILauncher {
    public struct Failure: Error, CustomStringConvertible {
        public var status: Int32
        public var description: String { "mpirun exited with status \(status); the rank and reason are in the lines above" }
    }

    /// The command line, without running it (shown to the user, and tested).
    public static func arguments(plan: Plan, planPath: String, executable: String,
                                 logs: String? = nil, hostfile: String? = nil) -> [String] {
        // Every rank's output also goes to LOGS/1/rank.N/{stdout,stderr}
        // (mpirun tees it; the terminal still sees rank 0's progress).
        let logs = logs ?? RunDirectory(plan.output).logs
        var args = ["-np", String(plan.world), "--oversubscribe", "--bind-to", "none", "--output-filename", logs]
        if let hostfile { args += ["--hostfile", hostfile] }
        for key in BLASEnvironment.workerEnvironment().keys.sorted() { args += ["-x", key] }
        args += [executable, "worker", "--plan", planPath]
        return args
    }

    /// Environment for mpirun and its workers: the BLAS kernel choice; what
    /// OpenMPI needs to run as root (containers and CI run as root); and
    /// shared-memory transfers without cross-memory attach, which containers
    /// often forbid.
    public static func environment() -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in BLASEnvironment.workerEnvironment() { env[k] = v }
        if getuid() == 0 {
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        }
        env["OMPI_MCA_btl_vader_single_copy_mechanism"] = env["OMPI_MCA_btl_vader_single_copy_mechanism"] ?? "none"

        return env
    }

    /// The hostfile for a cluster whose nodes are not just this machine
    /// (mpirun fills each host's slots in order, as the planner placed ranks).
    public static func hostfile(for cluster: ClusterSpec) -> String? {
        let local: Set<String> = ["localhost", "127.0.0.1", ProcessInfo.processInfo.hostName]
        let hosts = cluster.nodes.flatMap { n in n.hosts.map { ($0, n.slots) } }
        if hosts.allSatisfy({ local.contains($0.0) }) { return nil }
        return hosts.map { "\($0.0) slots=\($0.1)" }.joined(separator: "\n") + "\n"
    }

    /// Starts an attempt under the coordinator: mpirun in its own process
    /// group, its output in the attempt's launcher.log.
    public static func start(plan: Plan, planPath: String, attempt: Int, cluster: ClusterSpec,
                             executable: String = "/proc/self/exe") throws -> MPIJob {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: executable)) ?? executable
        let logs = AttemptLogs.directory(run: plan.output, attempt: attempt)
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        var hostfilePath: String?
        if let text = hostfile(for: cluster) {
            hostfilePath = RunDirectory(plan.output).hostfile
            try text.write(toFile: hostfilePath!, atomically: true, encoding: .utf8)
        }
        var args = arguments(plan: plan, planPath: planPath, executable: exe, logs: logs, hostfile: hostfilePath)
        // The cluster's variables reach the ranks too (before the worker's command).
        for k in cluster.environment.keys.sorted() { args.insert(contentsOf: ["-x", k], at: args.count - 4) }
        let pid = try start(on: cluster, args, log: AttemptLogs.launcherFile(run: plan.output, attempt: attempt))
        return MPIJob(pid: pid)
    }

    /// Starts mpirun with `arguments` as the cluster says to: under its
    /// prefix (the simulated nodes' head, a login wrapper), mpirun being the
    /// prefix's last word, with the cluster's variables; in a process group.
    static func start(on cluster: ClusterSpec, _ arguments: [String], log: String) throws -> pid_t {
        let command = cluster.launcherPrefix + [try mpirunPath()]
        let executable = command[0].contains("/") ? command[0] : Spawn.which(command[0]) ?? command[0]
        return try Spawn.start(executable, Array(command.dropFirst()) + arguments,
                               environment: environment().merging(cluster.environment) { $1 }, log: log, detach: .processGroup)
    }

    /// Runs mpirun in the foreground, its output passed through; throws on failure.
    public static func run(plan: Plan, planPath: String, executable: String = "/proc/self/exe") throws {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: executable)) ?? executable
        try runForeground(arguments(plan: plan, planPath: planPath, executable: exe))
    }

    /// Runs `ranks` copies of this herd with `herdArguments` under mpirun in
    /// the foreground (a job that is not a training plan: `herd data prepare`).
    public static func run(ranks: Int, herdArguments: [String], executable: String = "/proc/self/exe") throws {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: executable)) ?? executable
        var args = ["-np", String(ranks), "--oversubscribe", "--bind-to", "none"]
        for key in BLASEnvironment.workerEnvironment().keys.sorted() { args += ["-x", key] }
        try runForeground(args + [exe] + herdArguments)
    }

    static func runForeground(_ arguments: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try mpirunPath())
        p.arguments = arguments
        p.environment = environment()
        try p.run()
        // A stop for herd run is a stop for the job. mpirun answers SIGTERM by
        // killing the ranks, but forwards SIGUSR2 to them: that is the stop
        // request the workers act on (checkpoint, then exit together).
        let child = p.processIdentifier
        let sources = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { kill(child, SIGUSR2) }
            s.resume()
            return s
        }
        p.waitUntilExit()
        sources.forEach { $0.cancel() }
        if p.terminationStatus != 0 { throw Failure(status: p.terminationStatus) }
    }

    static func mpirunPath() throws -> String {
        if let path = Spawn.which("mpirun") { return path }
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "mpirun not found on PATH (Debian's openmpi-bin; make setup installs it)"])
    }
}

/// An attempt running as mpirun, a child of the coordinator.
public final class MPIJob: LaunchHandle {
    public let pid: pid_t
    private var status: Int32?
    public let runningSince: Double?
    init(pid: pid_t) { self.pid = pid; runningSince = Date().timeIntervalSince1970 }

    public var id: String { String(pid) }

    public func poll() throws -> Int32? {
        if status == nil { status = Spawn.poll(pid) }
        return status
    }

    /// mpirun forwards SIGUSR2 to every rank (SIGTERM it would answer by killing them).
    public func requestStop() throws { if status == nil { Foundation.kill(pid, SIGUSR2) } }

    /// SIGKILL to mpirun's process group: mpirun and the ranks it forked here.
    public func kill() throws {
        guard status == nil else { return }
        Foundation.kill(-pid, SIGKILL)
        Foundation.kill(pid, SIGKILL)
    }
}
