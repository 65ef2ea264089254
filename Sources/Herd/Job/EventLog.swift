import Foundation

/// `events.jsonl` in the run directory: one JSON object a line, appended and
/// flushed as it happens, so a monitor can tail it and nothing earlier is
/// ever rewritten (a second run in the same directory appends after the first).
public final class EventLog {
    private let handle: FileHandle
    public let path: String

    public init(path: String) throws {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        handle = h
        handle.seekToEndOfFile()
    }

    deinit { try? handle.close() }

    /// Writes `fields` plus `event` and a Unix `time`.
    public func write(_ event: String, _ fields: [String: Any]) {
        var object = fields
        object["event"] = event
        object["time"] = Date().timeIntervalSince1970
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        handle.write(data + Data([0x0A]))
    }
}
