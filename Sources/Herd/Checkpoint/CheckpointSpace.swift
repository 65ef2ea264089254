import Foundation

/// A checkpoint that found its filesystem full (ENOSPC, or EDQUOT for a
/// quota): which file was being written, how much the checkpoint needs and
/// how much is free. The low-level writers fill in the file, the call and
/// the errno; the save fills in the step and the estimate of what it needs
/// (`CheckpointSpace.settle`) once every rank has agreed that a save failed.
public struct NoSpace: Sendable, Equatable, CustomStringConvertible {
    /// Where `neededBytes` comes from.
    public enum Estimate: Sendable, Equatable {
        /// Not known yet (the writer has not filled it in).
        case unknown
        /// The size of the previous complete checkpoint (its manifest's files and the manifest).
        case previousCheckpoint(step: Int)
        /// No earlier checkpoint: the uncompressed bytes this save writes over
        /// every rank (an upper bound; zstd barely shrinks fp32).
        case uncompressed
    }

    /// The file (or directory) being written when the space ran out.
    public var file: String
    /// The call that failed: "write", "fsync", "create", "rename".
    public var operation: String
    public var errno: Int32
    /// The checkpoint's step (filled in by the save).
    public var step: Int?
    public var neededBytes: Int
    public var estimate: Estimate
    /// Free bytes (statvfs, for an unprivileged user) on the checkpoint's filesystem.
    public var freeBytes: Int
    /// That filesystem: its mount point and type, as /proc/self/mountinfo gives them.
    public var filesystem: String

    public init(file: String, operation: String, errno: Int32, step: Int? = nil, neededBytes: Int = 0,
                estimate: Estimate = .unknown, freeBytes: Int, filesystem: String) {
        self.file = file; self.operation = operation; self.errno = errno; self.step = step
        self.neededBytes = neededBytes; self.estimate = estimate; self.freeBytes = freeBytes; self.filesystem = filesystem
    }

    /// Measured now: the free space and filesystem of `file`'s directory.
    static func found(file: String, operation: String, errno code: Int32) -> NoSpace {
        NoSpace(file: file, operation: operation, errno: code, freeBytes: CheckpointSpace.freeBytes(at: file) ?? 0,
                filesystem: CheckpointSpace.filesystem(of: file))
    }

    /// How the estimate was made, in words (also the event's reason).
    public var estimateText: String {
        switch estimate {
        case .unknown: return "not known"
        case .previousCheckpoint(let s): return "the size of \(CheckpointStore.name(step: s)), the previous complete checkpoint"
        case .uncompressed: return "the uncompressed bytes this save writes over all ranks, there being no earlier checkpoint to go by; zstd writes a little less"
        }
    }

    public var description: String {
        let name = step.map { "checkpoint \(CheckpointStore.name(step: $0))" } ?? "a checkpoint"
        let need = estimate == .unknown ? "the bytes it needs are not known"
            : "it needs about \(CheckpointSpace.text(bytes: neededBytes)) (\(neededBytes) bytes: \(estimateText))"
        return "\(name) found no space: \(operation) of \(file) failed: \(String(cString: strerror(errno))); "
            + "\(need), and \(CheckpointSpace.text(bytes: freeBytes)) (\(freeBytes) bytes) are free on \(filesystem). "
            + "The partial checkpoint is removed; LATEST and the earlier checkpoints are untouched"
    }
}

/// Saving into a full filesystem: the errno test, free space, the exit
/// status, and what a save does once its ranks agree that one of them
/// found no space.
public enum CheckpointSpace {
    /// The exit status of a rank (and so of mpirun, and of `herd run`) whose
    /// checkpoint found no space: 75, sysexits.h's EX_TEMPFAIL ("try again
    /// later"). The coordinator waits for space on it instead of restarting.
    public static let exitStatus: Int32 = 75

    /// Whether an errno means the filesystem (or the user's quota) is full.
    public static func isFull(_ code: Int32) -> Bool { code == ENOSPC || code == EDQUOT }

    /// The error to throw for a failed call on `file`: `.noSpace` when the
    /// errno says full, else `.io` with the errno's text.
    static func error(_ file: String, _ operation: String, errno code: Int32) -> CheckpointError {
        if isFull(code) { return .noSpace(.found(file: file, operation: operation, errno: code)) }
        return .io(file, "\(operation) failed: \(String(cString: strerror(code)))")
    }

    /// Bytes an unprivileged writer can still use on the filesystem holding
    /// `path` (or its nearest existing ancestor); nil if none can be read.
    public static func freeBytes(at path: String) -> Int? {
        guard let dir = existing(path) else { return nil }
        var s = statvfs()
        guard statvfs(dir, &s) == 0 else { return nil }
        return Int(s.f_bavail) * Int(s.f_frsize)
    }

    /// The path itself if it exists, else its nearest existing ancestor.
    static func existing(_ path: String) -> String? {
        var p = path
        while !p.isEmpty {
            if FileManager.default.fileExists(atPath: p) { return p }
            let parent = (p as NSString).deletingLastPathComponent
            if parent == p { break }
            p = parent
        }
        return nil
    }

    /// "the tmpfs mounted at /x" for the filesystem holding `path` (the
    /// longest mount point that contains it), or its directory if
    /// /proc/self/mountinfo does not say.
    public static func filesystem(of path: String) -> String {
        let dir = existing(path) ?? path
        let resolved = URL(fileURLWithPath: dir).resolvingSymlinksInPath().path
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return "the filesystem of \(dir)" }
        var best: (point: String, type: String)?
        for line in text.split(separator: "\n") {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
            let f = line.split(separator: " ")
            guard f.count > 4, let dash = f.firstIndex(of: "-"), dash + 1 < f.count else { continue }
            let point = String(f[4]).replacingOccurrences(of: "\\040", with: " ")
            let inside = point == "/" || resolved == point || resolved.hasPrefix(point + "/")
            if inside && point.count >= (best?.point.count ?? -1) { best = (point, String(f[dash + 1])) }
        }
        guard let best else { return "the filesystem of \(dir)" }
        return "the \(best.type) filesystem mounted at \(best.point)"
    }

    /// 1.5 MiB, 300 KiB, 12 B.
    public static func text(bytes n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), u = 0
        while abs(v) >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
    }

    /// What a save needs: rank 0 knows the previous checkpoint's size,
    /// every rank what it writes uncompressed; summed over the ranks.
    struct Need: Sendable, Equatable {
        var bytes: Int
        var estimate: NoSpace.Estimate
    }

    /// A failure as one number for the ranks to agree on (the largest wins).
    static func code(_ failure: Error?) -> Double {
        guard let failure else { return 0 }
        if case CheckpointError.noSpace = failure { return 2 }
        if case CheckpointError.noSpaceOnAnotherRank = failure { return 2 }
        return 1
    }

    /// Collective: every rank learns whether any rank's part of a save
    /// failed, and throws if one did. The rank that found no space fills
    /// in what the checkpoint needs, removes the partial `step-N.tmp` (and
    /// a half-written LATEST.tmp; never LATEST or a complete checkpoint),
    /// records a `checkpoint_failed` event in the run's events.jsonl, and
    /// only then do the ranks throw — its peers wait for it in a barrier,
    /// so that none of them ends the job (MPI_Abort) before the record is written.
    static func agree(_ world: Communicator, _ failure: Error?, step: Int, need: Need, job: any RunIdentity) throws {
        try settle(world, failure, worst: world.allReduce(code(failure), op: .max), step: step, need: need, job: job)
    }

    /// `agree` when the ranks already know the largest failure code (`worst`).
    static func settle(_ world: Communicator, _ failure: Error?, worst: Double, step: Int, need: Need, job: any RunIdentity) throws {
        guard worst > 0 else { return }
        let store = CheckpointStore(runDirectory: job.output)
        let tmp = store.path(step: step) + ".tmp"
        var own = failure
        if case CheckpointError.noSpace(var s)? = failure {
            try? FileManager.default.removeItem(atPath: tmp)
            try? FileManager.default.removeItem(atPath: store.latestPath + ".tmp")
            s.step = step
            s.neededBytes = need.bytes
            s.estimate = need.estimate
            // What is free now that the partial checkpoint is gone: what a wait is measured against.
            s.freeBytes = freeBytes(at: store.root) ?? s.freeBytes
            own = CheckpointError.noSpace(s)
            if let log = try? EventLog(run: RunDirectory(job.output)) { log.write(.checkpointFailed(s, rank: world.rank)) }
        }
        world.barrier()
        if let own { throw own }
        if worst >= 2 { throw CheckpointError.noSpaceOnAnotherRank(tmp) }
        throw CheckpointError.io(tmp, "another rank failed to write its part")
    }
}

extension CheckpointError {
    /// This rank's save found no space, or another rank's did.
    public var isNoSpace: Bool {
        switch self {
        case .noSpace, .noSpaceOnAnotherRank: return true
        default: return false
        }
    }
}
