import Foundation

/// `events.jsonl` in the run directory: one JSON object a line, appended and
/// flushed as it happens, so a monitor can tail it and nothing earlier is
/// ever rewritten (a second run in the same directory appends after the first).
/// Opened with O_APPEND: rank 0 and the coordinator both write here, and
/// each line lands whole at the end.
public final class EventLog {
    private let handle: FileHandle
    public let path: String

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path,
                NSLocalizedDescriptionKey: "cannot open \(path) for appending: \(String(cString: strerror(errno)))"])
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }


    /// Writes `fields` plus `event` and a Unix `time`.
    public func write(_ event: String, _ fields: [String: Any]) {
        var object = fields
        object["event"] = event
        object["time"] = Date().timeIntervalSince1970
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        handle.write(data + Data([0x0A]))
    }
}
