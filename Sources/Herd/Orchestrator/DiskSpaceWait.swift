import Foundation

/// An attempt that ended because a checkpoint found no space, as the
/// coordinator learned it: from the failing rank's `checkpoint_failed`
/// event, or failing that from the exit status alone (75).
public struct DiskShortage: Sendable, Equatable {
    /// The file the checkpoint was writing (or the checkpoint directory).
    public var path: String
    /// What to wait for: free bytes on the checkpoint directory's filesystem.
    public var neededBytes: Int
    /// What was free when the rank gave up (the partial checkpoint removed).
    public var freeBytes: Int?
    /// The rank's words (its error), or the coordinator's.
    public var reason: String

    public init(path: String, neededBytes: Int, freeBytes: Int? = nil, reason: String) {
        self.path = path; self.neededBytes = neededBytes; self.freeBytes = freeBytes; self.reason = reason
    }

    /// From a `checkpoint_failed` event (nil for any other line).
    public init?(event e: RunEvent) {
        guard e.event == .checkpointFailed, let path = e.path else { return nil }
        self.init(path: path, neededBytes: max(0, e.bytes ?? 0), freeBytes: e.bytesFree,
                  reason: e.reason ?? "a checkpoint found no space writing \(path)")
    }
}

/// The coordinator's wait for space: poll the free bytes of the checkpoint
/// directory's filesystem until the checkpoint that failed would fit, then
/// relaunch from LATEST (not a restart: nothing is wrong with the job).
public enum DiskSpaceWait {
    /// Seconds between looks at the free space.
    public static let interval = 2.0

    /// Whether `free` bytes are enough for a checkpoint needing `needed`
    /// (at least one byte free: a checkpoint whose needs are unknown waits for some).
    public static func enough(free: Int, needed: Int) -> Bool { free >= max(needed, 1) }
}

extension Coordinator {
    /// The shortage this attempt reported, handed to the decision once (and
    /// forgotten, so that a later attempt failing otherwise is not taken for
    /// it). Without a `checkpoint_failed` event — events.jsonl on the full
    /// disk too, or a PPO value model's, which has a run directory of its own
    /// — the exit status says it, and the wait is for the size of LATEST.
    func takeDiskShortage(after outcome: AttemptOutcome, run: String) -> DiskShortage? {
        defer { diskShortage = nil }
        if let reported = diskShortage { return reported }
        guard case .exited(CheckpointSpace.exitStatus) = outcome else { return nil }
        let store = CheckpointStore(runDirectory: run)
        guard let latest = store.latestSize() else { return nil }
        return DiskShortage(path: store.root, neededBytes: latest.bytes, freeBytes: CheckpointSpace.freeBytes(at: store.root),
                            reason: "the ranks exited with status \(CheckpointSpace.exitStatus) (a checkpoint found no space) and no rank's "
                                + "checkpoint_failed event was read; waiting for the size of \(CheckpointStore.name(step: latest.step)), the newest checkpoint")
    }

    /// Waits (polling every `DiskSpaceWait.interval` s, answering a cancel
    /// within half a second) until the filesystem of the run's checkpoint
    /// directory has the bytes the failed checkpoint needs. Logs once what
    /// it waits for and once when the space is back; the job stays
    /// `restarting` with the wait as its message, its restarts unchanged.
    /// Returns on space or on a cancel (the caller's loop handles that).
    func waitForSpace(_ s: DiskShortage, runDir: String, cancelled: () -> Bool) throws {
        let dir = RunDirectory(runDir).checkpoints
        let fs = CheckpointSpace.filesystem(of: dir)
        let need = "\(CheckpointSpace.text(bytes: s.neededBytes)) (\(s.neededBytes) bytes) free on \(fs)"
        let free = CheckpointSpace.freeBytes(at: dir)
        say(s.reason)
        say("waiting for \(need), \(free.map { CheckpointSpace.text(bytes: $0) } ?? "unknown") free now; checking every "
            + "\(Int(DiskSpaceWait.interval)) s; no restart is counted; herd cancel \(jobID) ends the wait")
        try store.update(jobID, ["state": .text(JobState.restarting.rawValue),
                                 "message": .text("waiting for disk space: a checkpoint needs \(need); it found no space writing \(s.path)")])
        var next = Date().timeIntervalSince1970
        while !cancelled() {
            if Date().timeIntervalSince1970 >= next {
                if let now = CheckpointSpace.freeBytes(at: dir), DiskSpaceWait.enough(free: now, needed: s.neededBytes) {
                    let latest = CheckpointStore(runDirectory: runDir).latest()
                    say("space is back: \(CheckpointSpace.text(bytes: now)) (\(now) bytes) free on \(fs); relaunching from "
                        + (latest.map { "the checkpoint at step \($0)" } ?? "the start (no checkpoint yet)"))
                    try store.update(jobID, ["message": .text("disk space is back; relaunching")])
                    return
                }
                next += DiskSpaceWait.interval
            }
            Thread.sleep(forTimeInterval: min(0.5, DiskSpaceWait.interval))
        }
        say("cancelled while waiting for disk space")
    }
}
