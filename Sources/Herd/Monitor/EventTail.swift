import Foundation

/// Reads what has been appended to a run's events.jsonl since the last
/// call, event by event (a line still being written waits for its newline).
public final class EventTail {
    public let path: String
    private var offset: UInt64
    private var partial = Data()

    public convenience init(run: RunDirectory, fromStart: Bool = false) { self.init(path: run.events, fromStart: fromStart) }

    /// Starts at the file's current end (earlier runs' events are history),
    /// or at its beginning.
    public init(path: String, fromStart: Bool = false) {
        self.path = path
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value
        offset = fromStart ? 0 : size ?? 0
    }

    public func next() -> [RunEvent] {
        guard let h = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? h.close() }
        h.seek(toFileOffset: offset)
        let data = h.readDataToEndOfFile()
        offset += UInt64(data.count)
        partial.append(data)
        var events: [RunEvent] = []
        while let nl = partial.firstIndex(of: 0x0A) {
            let line = partial[partial.startIndex..<nl]
            partial = Data(partial[(nl + 1)...])
            if let e = RunEvent.decode(line: line) { events.append(e) }
        }
        return events
    }
}
