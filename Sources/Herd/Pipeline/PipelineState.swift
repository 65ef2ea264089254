import Foundation

/// What the scheduler knows of a pipeline's stages, kept in
/// `RUN/pipeline-state.json` (written whole and renamed into place, so a
/// scheduler killed at any moment leaves the last complete state). A stage
/// is finished only once its command exited 0; a finished stage is never
/// run again.
public struct PipelineState: Codable, Sendable {
    public enum Phase: String, Codable, Sendable { case running, finished, failed }

    public struct Stage: Codable, Sendable {
        public var phase: Phase
        public var started: Double
        public var finished: Double?
        public var pid: Int32?
        public var attempts: Int
        public var command: [String]
        public var status: Int32?
        public var seconds: Double? { finished.map { $0 - started } }
    }

    public var manifest: String
    /// The manifest's text when the pipeline was launched (to say when it has changed since).
    public var manifestText: String?
    public var cluster: String?
    /// The last iteration asked for (launch --through); resume runs up to it.
    public var target: Int
    public var stages: [String: Stage] = [:]

    public static func path(run: String) -> String { "\(run)/pipeline-state.json" }

    public static func read(run: String) throws -> PipelineState? {
        let p = path(run: run)
        guard let data = FileManager.default.contents(atPath: p) else { return nil }
        do { return try JSONDecoder().decode(PipelineState.self, from: data) } catch {
            throw RecordError(file: p, line: 0, message: "the pipeline's state cannot be read: \(error)")
        }
    }

    public func write(run: String) throws {
        try JSONFile.write(self, to: Self.path(run: run))
    }

    public func isFinished(_ id: String) -> Bool { stages[id]?.phase == .finished }
}

/// An exclusive lock on a pipeline's run directory (flock: released by
/// the kernel when its holder dies, so a killed scheduler never blocks
/// the next one).
public final class PipelineLock {
    let fd: Int32

    public init(run: String) throws {
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        let path = "\(run)/.scheduler.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RecordError(file: path, line: 0, message: "cannot open: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw PipelineError.busy(run: run)
        }
    }

    deinit { close(fd) }
}

public enum PipelineError: Error, CustomStringConvertible {
    case busy(run: String)
    case outOfOrder(asked: String, unfinished: String)
    case noIteration(Int, count: Int)
    case stageFailed(stage: String, status: Int32, log: String, tail: String)
    case notLaunched(run: String)

    public var description: String {
        switch self {
        case .busy(let run): return "another scheduler is running the pipeline in \(run) (it holds \(run)/.scheduler.lock)"
        case let .outOfOrder(asked, unfinished):
            return "\(asked) cannot start: \(unfinished) has not finished — run herd rlhf resume, or launch the earlier iteration first"
        case let .noIteration(n, count): return "--iteration/--through: the pipeline has iterations 1 to \(count), got \(n)"
        case let .stageFailed(stage, status, log, tail):
            return "stage \(stage) failed (exit status \(status)); its log is \(log):\n\(tail)\nfix the cause, then herd rlhf resume continues at this stage"
        case .notLaunched(let run): return "no pipeline was launched in \(run) (no pipeline-state.json): use herd rlhf launch"
        }
    }
}
