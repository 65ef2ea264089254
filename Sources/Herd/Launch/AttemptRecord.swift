import Foundation

/// The attempt a coordinator started, as it wrote it into the run directory
/// (RUN/attempt.json) the moment the launcher was up: which launcher, its
/// id (mpirun's pid or Slurm's job id), the host mpirun runs on and its
/// process start time. A coordinator started later for the same job — the
/// first one was SIGKILLed, its host rebooted — reads it to find the
/// attempt and watch it instead of launching another.
public struct AttemptRecord: Codable, Sendable, Equatable {
    public var attempt: Int
    public var launcher: String
    public var id: String
    /// Where mpirun runs (its pid means something only there).
    public var host: String
    /// mpirun's start time in clock ticks after boot (/proc/PID/stat): a pid
    /// the kernel gave to another process since is not the attempt.
    public var processStart: UInt64?
    public var started: Double

    public init(attempt: Int, launcher: String, id: String, host: String = ProcessInfo.processInfo.hostName,
                processStart: UInt64? = nil, started: Double = Date().timeIntervalSince1970) {
        self.attempt = attempt; self.launcher = launcher; self.id = id; self.host = host
        self.processStart = processStart; self.started = started
    }

    public static func read(_ run: RunDirectory) -> AttemptRecord? {
        guard let data = FileManager.default.contents(atPath: run.attempt) else { return nil }
        return try? JSONDecoder().decode(AttemptRecord.self, from: data)
    }

    public func write(to run: RunDirectory) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(self).write(to: URL(fileURLWithPath: run.attempt), options: .atomic)
    }

    /// A process's start time in clock ticks after boot (field 22 of
    /// /proc/PID/stat), or nil when it is gone.
    public static func processStart(_ pid: Int) -> UInt64? {
        guard let fields = Spawn.statFields(pid) else { return nil }
        return fields.count > 19 ? UInt64(fields[19]) : nil   // field 22
    }

    /// How an mpirun attempt that no coordinator was waiting for ended, from
    /// what its ranks logged after its launch: 0 when rank 0 logged the
    /// end, 143 when the ranks stopped on request after a checkpoint (as
    /// `herd worker` exits then), 1 otherwise (its status went to no one;
    /// the attempt's launcher.log has mpirun's last words).
    public func inferredStatus(run: RunDirectory) -> Int32 {
        let events = (try? run.readEvents()) ?? []
        let launched = events.lastIndex { $0.event == .launch && $0.attempt == attempt } ?? -1
        let after = events[(launched + 1)...]
        if after.contains(where: { $0.event == .end }) { return 0 }
        if after.contains(where: { $0.event == .stopped }) { return 143 }
        return 1
    }
}

/// An mpirun attempt that another coordinator started and a new one
/// watches: not this process's child, so its end is found by its pid
/// going away (and its status from the run's events); stopped and killed
/// through its process group, which mpirun leads.
public final class AdoptedMPIJob: LaunchHandle {
    public let record: AttemptRecord
    let run: RunDirectory
    private var status: Int32?
    public let runningSince: Double?

    public init(record: AttemptRecord, run: RunDirectory) {
        self.record = record; self.run = run; runningSince = record.started
    }

    public var id: String { record.id }
    var pid: pid_t { pid_t(record.id) ?? -1 }

    /// mpirun is still the process the record names.
    public var isRunning: Bool {
        Spawn.isAlive(Int(pid)) && (record.processStart == nil || AttemptRecord.processStart(Int(pid)) == record.processStart)
    }

    public func poll() throws -> Int32? {
        if status == nil && !isRunning { status = record.inferredStatus(run: run) }
        return status
    }

    public func requestStop() throws { if status == nil { Foundation.kill(pid, SIGUSR2) } }

    public func kill() throws {
        guard status == nil, isRunning else { return }
        Foundation.kill(-pid, SIGKILL)
        Foundation.kill(pid, SIGKILL)
    }
}

/// Finding a job's current attempt after its coordinator is gone.
public enum AttemptAdoption {
    /// The attempt of `record` as a handle to watch — still running, or
    /// ended while no coordinator watched it (its `poll` then gives how):
    /// an mpirun of this host, or a Slurm job. nil for an mpirun on another
    /// host, whose pid means nothing here.
    public static func handle(_ record: AttemptRecord, run: RunDirectory, cluster: ClusterSpec) throws -> LaunchHandle? {
        switch record.launcher {
        case ClusterSpec.Launcher.mpirun.rawValue:
            guard record.host == ProcessInfo.processInfo.hostName else { return nil }
            return AdoptedMPIJob(record: record, run: run)
        case ClusterSpec.Launcher.slurm.rawValue:
            return try SlurmJob.adopt(id: record.id, cluster: cluster)
        default:
            return nil
        }
    }
}
