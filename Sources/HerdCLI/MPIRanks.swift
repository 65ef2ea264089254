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
        p.arguments = ["-np", String(ranks), "--oversubscribe", "--bind-to", "none", exe] + Array(CommandLine.arguments.dropFirst()) + ["--mpi-worker"]
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
}
