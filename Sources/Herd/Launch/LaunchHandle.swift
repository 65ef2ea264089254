import Foundation

/// One attempt of a job as a launcher started it: mpirun on this machine,
/// or a Slurm batch job. The coordinator polls it, asks it to stop (the
/// workers checkpoint and exit), or kills it (a hang: nothing to save).
public protocol LaunchHandle: AnyObject {
    /// mpirun's pid, or Slurm's job id.
    var id: String { get }
    /// When the ranks started (nil while Slurm keeps the job pending).
    var runningSince: Double? { get }
    /// The attempt's exit status once it has ended (0 = every rank finished).
    func poll() throws -> Int32?
    /// Ask every rank to checkpoint and exit (SIGUSR2 to the ranks).
    func requestStop() throws
    /// End it now, every rank.
    func kill() throws
    /// How many times the launcher itself restarted the attempt (Slurm's requeue after a node failure).
    var requeues: Int { get }
    /// Run a requeued attempt now rather than after the launcher's own delay.
    func startNow() throws
}

extension LaunchHandle {
    public var requeues: Int { 0 }
    public func startNow() throws {}
}

/// Where an attempt's logs go: RUN/logs/attempt-K/ (mpirun's per-rank
/// files under 1/rank.N/, the launcher's own output beside them).
public enum AttemptLogs {
    public static func directory(run: String, attempt: Int) -> String {
        RunDirectory(run).attemptLogs(attempt)
    }

    public static func rankFile(run: String, attempt: Int, rank: Int, stream: String = "stdout") -> String {
        (directory(run: run, attempt: attempt) as NSString).appendingPathComponent("1/rank.\(rank)/\(stream)")
    }

    public static func launcherFile(run: String, attempt: Int) -> String {
        (directory(run: run, attempt: attempt) as NSString).appendingPathComponent("launcher.log")
    }
}
