import Foundation

/// A run's events.jsonl, opened for appending: one `RunEvent` a line,
/// written and flushed as it happens, so a monitor can tail it and nothing
/// earlier is ever rewritten (a second run in the same directory appends
/// after the first). Opened with O_APPEND: rank 0 and the coordinator both
/// write here, and each line lands whole at the end.
public final class EventLog {
    private let handle: FileHandle
    public let path: String

    public convenience init(run: RunDirectory) throws { try self.init(path: run.events) }

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path,
                NSLocalizedDescriptionKey: "cannot open \(path) for appending: \(String(cString: strerror(errno)))"])
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// Appends `event`, stamped with the current Unix time unless it has one.
    /// A line that cannot be written (a full disk) is lost, not fatal:
    /// `FileHandle.write(_:)` would trap; readers skip a torn line.
    public func write(_ event: RunEvent) {
        var e = event
        if e.time == nil { e.time = Date().timeIntervalSince1970 }
        try? handle.write(contentsOf: e.line() + Data([0x0A]))
    }
}
