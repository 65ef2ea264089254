import Foundation

/// SIGTERM (a cancel, a pre-emption, Slurm's end of allocation) asks the
/// job to stop: the handler only sets a flag; the training loop checks it
/// after each step, all ranks agree, a checkpoint is written, and the
/// workers exit. SIGINT (Ctrl-C) does the same, and so does SIGUSR2, which
/// is how `herd run` passes a stop through mpirun (mpirun forwards SIGUSR2
/// to every rank, while it answers SIGTERM by killing them).
public enum StopSignal {
    nonisolated(unsafe) static var requested: sig_atomic_t = 0

    public static func install() {
        signal(SIGTERM) { _ in StopSignal.requested = 1 }
        signal(SIGINT) { _ in StopSignal.requested = 1 }
        signal(SIGUSR2) { _ in StopSignal.requested = 1 }
    }

    public static var isRequested: Bool { requested != 0 }
}
