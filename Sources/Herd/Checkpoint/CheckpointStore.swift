import Foundation

/// The checkpoints of a run: `RUN/checkpoints/step-00000100/` directories
/// and a `LATEST` file naming the newest complete one. A checkpoint is
/// written into `step-N.tmp`, fsynced, renamed into place, and only then is
/// LATEST replaced (itself written aside and renamed), so a crash at any
/// moment leaves LATEST naming a complete checkpoint. Readers ignore
/// `*.tmp` directories.
public struct CheckpointStore: Sendable {
    public let root: String
    public init(runDirectory: String) { root = RunDirectory(runDirectory).checkpoints }

    public static func name(step: Int) -> String { String(format: "step-%08d", step) }
    public func path(step: Int) -> String { (root as NSString).appendingPathComponent(Self.name(step: step)) }
    var latestPath: String { (root as NSString).appendingPathComponent("LATEST") }

    /// Complete checkpoints (directories with a manifest), oldest first.
    public func steps() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.compactMap { n -> Int? in
            guard n.hasPrefix("step-"), !n.hasSuffix(".tmp"),
                  FileManager.default.fileExists(atPath: "\(root)/\(n)/\(CheckpointManifest.fileName)") else { return nil }
            return Int(n.dropFirst(5))
        }.sorted()
    }

    /// The step LATEST names, if it names a complete checkpoint.
    public func latest() -> Int? {
        guard let text = try? String(contentsOfFile: latestPath, encoding: .utf8),
              let step = Int(text.trimmingCharacters(in: .whitespacesAndNewlines).dropFirst(5)),
              steps().contains(step) else { return nil }
        return step
    }

    /// Marks `step` as the newest complete checkpoint (atomically).
    public func setLatest(_ step: Int) throws {
        let tmp = latestPath + ".tmp"
        try durableWrite(Data((Self.name(step: step) + "\n").utf8), to: tmp)
        guard rename(tmp, latestPath) == 0 else { throw CheckpointSpace.error(latestPath, "rename", errno: errno) }
        try fsyncDirectory(root)
    }

    /// The step and size of the checkpoint LATEST names: its files as its
    /// manifest records them, and the manifest itself (what the next
    /// checkpoint of the same layout needs, about).
    public func latestSize() -> (step: Int, bytes: Int)? {
        guard let s = latest(), let m = try? CheckpointManifest.read(dir: path(step: s)) else { return nil }
        let attributes = try? FileManager.default.attributesOfItem(atPath: "\(path(step: s))/\(CheckpointManifest.fileName)")
        let manifestBytes = (attributes?[.size] as? NSNumber)?.intValue ?? 0
        return (s, m.files.reduce(0) { $0 + $1.bytes } + manifestBytes)
    }

    /// Removes what an interrupted save left: `step-N.tmp` directories and
    /// LATEST.tmp (readers ignore them, but they hold space). Called when a
    /// run starts, before any rank writes; complete checkpoints and LATEST
    /// are never touched. Returns what it removed.
    @discardableResult
    public func removeUnfinished() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.filter { $0.hasSuffix(".tmp") }.sorted().filter {
            (try? FileManager.default.removeItem(atPath: (root as NSString).appendingPathComponent($0))) != nil
        }
    }

    /// Keeps the newest `keep` checkpoints and every step divisible by `keepEvery`.
    public func prune(keep: Int, keepEvery: Int?) {
        let all = steps()
        for s in all.dropLast(keep) where !(keepEvery.map { $0 > 0 && s % $0 == 0 } ?? false) {
            try? FileManager.default.removeItem(atPath: path(step: s))
        }
    }

    /// Which checkpoint to resume from: LATEST, or when it is missing or
    /// damaged the newest complete one that verifies (saying so through `note`).
    public func resumable(note: (String) -> Void) throws -> Int? {
        if let l = latest() {
            do { try CheckpointManifest.read(dir: path(step: l)).verify(dir: path(step: l)); return l } catch {
                note("checkpoint \(Self.name(step: l)) named by LATEST is damaged (\(error)); looking for an earlier one")
            }
        } else if FileManager.default.fileExists(atPath: latestPath) {
            note("\(latestPath) does not name a complete checkpoint; looking for the newest one that verifies")
        }
        for s in steps().reversed() where s != latest() {
            do {
                try CheckpointManifest.read(dir: path(step: s)).verify(dir: path(step: s))
                note("resuming from \(Self.name(step: s)), the newest checkpoint that verifies")
                return s
            } catch { note("skipping \(Self.name(step: s)): \(error)") }
        }
        return nil
    }

    /// The step every rank of `world` resumes from: rank 0 decides
    /// (`requested` if given, else `resumable`) and the others are told, so
    /// that all load the same checkpoint; nil when there is none.
    public func agreedResumeStep(_ world: Communicator, requested: Int? = nil, note: (String) -> Void) throws -> Int? {
        var chosen = -1.0
        if world.rank == 0 {
            if let s = requested {
                guard steps().contains(s) else { throw CheckpointError.missing(path(step: s)) }
                chosen = Double(s)
            } else if let s = try resumable(note: note) {
                chosen = Double(s)
            }
        }
        let s = Int(world.allReduce(chosen, op: .max))
        return s >= 0 ? s : nil
    }
}

/// Writes `data` to `path` and fsyncs it; a full filesystem is `.noSpace`.
func durableWrite(_ data: Data, to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw CheckpointSpace.error(path, "create", errno: errno) }
    defer { close(fd) }
    try data.withUnsafeBytes { b in
        var off = 0
        while off < b.count {
            let w = write(fd, b.baseAddress! + off, b.count - off)
            guard w > 0 else { throw CheckpointSpace.error(path, "write", errno: w < 0 ? errno : EIO) }
            off += w
        }
    }
    guard fsync(fd) == 0 else { throw CheckpointSpace.error(path, "fsync", errno: errno) }
}

func fsyncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY)
    guard fd >= 0 else { throw CheckpointError.io(path, "cannot open directory") }
    defer { close(fd) }
    // A directory's fsync fails only for what a file's would have (a full filesystem among them).
    if fsync(fd) != 0 && CheckpointSpace.isFull(errno) { throw CheckpointSpace.error(path, "fsync", errno: errno) }
}
