import ArgumentParser
import Foundation
import Herd

/// Commands that run as several MPI ranks on this machine (rejection
/// sampling, `herd generate --tensor`): the command as typed starts itself
/// under mpirun with `--mpi-worker` and waits for the ranks.
enum MPIRanks {
    /// Runs this same command as `ranks` MPI ranks; throws their exit status when it is not 0.
    static func relaunch(_ ranks: Int) throws {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        guard let mpirun = Spawn.which("mpirun") else { throw ValidationError("several ranks: mpirun is not on PATH (Debian's openmpi-bin)") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mpirun)
        // The flag goes before a trailing `-- ANNOTATOR...`, which is the annotator's command line.
        var args = Array(CommandLine.arguments.dropFirst())
        args.insert("--mpi-worker", at: args.firstIndex(of: "--") ?? args.endIndex)
        p.arguments = ["-np", String(ranks), "--oversubscribe", "--bind-to", "none", exe] + args
        p.environment = MPILauncher.environment()
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus != 0 { throw ExitCode(p.terminationStatus) }
    }

    /// In a worker: MPI started; the world of ranks.
    static func world() -> Communicator {
        MPIRuntime.start()
        return MPICommunicator.world()
    }

    /// A generation stage on a tensor group of `tensor` ranks: started
    /// again under mpirun; its first rank runs `stage` leading the others,
    /// who load and generate as it tells them. One rank: `stage` as it is.
    static func leading(tensor: Int, mpiWorker: Bool, _ stage: (TensorGroupLeader?) throws -> Void) throws {
        guard tensor >= 1 else { throw ValidationError("--tensor: at least 1, got \(tensor)") }
        if tensor > 1 && !mpiWorker { return try relaunch(tensor) }
        guard mpiWorker else { return try stage(nil) }
        let group = world()
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount / group.size)
        Matmul.threads = cores
        do {
            if group.rank == 0 {
                let leader = TensorGroupLeader(group: group)
                try stage(leader)
                leader.release()
            } else {
                try TensorGroupLeader.follow(group: group, threads: cores)
            }
        } catch { MPIRuntime.abort(rank: group.rank, reason: "\(error)") }
        MPIRuntime.finish()
    }
}
