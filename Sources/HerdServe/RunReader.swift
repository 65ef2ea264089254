import Foundation
import Herd

/// Reads a run directory's files in pages: events after a byte offset or a
/// step, a log from an offset or its tail, the checkpoints with their sizes.
/// Paths come from the job store and fixed names, never from a request.
enum RunReader {
    static let maxEvents = 20_000
    static let maxLogBytes = 1 << 20

    /// Events of events.jsonl after byte `offset` (whole lines only), those
    /// with a step above `sinceStep` when given; `next` is where to ask from
    /// next time. The lines are passed on as written (each a JSON object).
    static func events(run: String, offset: Int, sinceStep: Int?, limit: Int) throws -> Data {
        let path = RunDirectory(run).events
        var lines: [Data] = []
        var next = offset
        var size = 0
        if let h = FileHandle(forReadingAtPath: path) {
            defer { try? h.close() }
            size = Int(h.seekToEndOfFile())
            // Read a chunk at a time until `limit` lines: a poll for the
            // newest events never reads a long run's whole file.
            var position = min(offset, size)
            next = position
            // An offset inside a line (not one a `next` gave) starts at the next whole line.
            var skipPartial = false
            if position > 0 {
                h.seek(toFileOffset: UInt64(position - 1))
                skipPartial = h.readData(ofLength: 1).first != 0x0A
            }
            h.seek(toFileOffset: UInt64(position))
            var pending = Data()
            while lines.count < limit && position < size {
                let chunk = h.readData(ofLength: min(size - position, 256 << 10))
                if chunk.isEmpty { break }
                position += chunk.count
                pending.append(chunk)
                var start = pending.startIndex
                if skipPartial {
                    guard let nl = pending.firstIndex(of: 0x0A) else { next += pending.count; pending = Data(); continue }
                    next += nl - pending.startIndex + 1
                    start = nl + 1
                    skipPartial = false
                }
                while lines.count < limit, let nl = pending[start...].firstIndex(of: 0x0A) {
                    let line = pending[start..<nl]
                    start = nl + 1
                    next += line.count + 1
                    guard !line.isEmpty else { continue }
                    if let since = sinceStep {
                        guard let step = RunEvent.decode(line: line)?.step, step > since else { continue }
                    }
                    lines.append(Data(line))
                }
                pending = Data(pending[start...])
            }
        }
        var out = Data("{\"events\":[".utf8)
        for (i, l) in lines.enumerated() {
            if i > 0 { out.append(0x2C) }
            out.append(l)
        }
        out.append(Data("],\"next\":\(next),\"size\":\(size)}".utf8))
        return out
    }

    struct LogPage: Encodable {
        var path: String
        var offset: Int
        var next: Int
        var size: Int
        var text: String
    }

    /// Bytes [offset, offset + limit) of a log, or its last `tail` bytes.
    static func log(path: String, offset: Int?, tail: Int?, limit: Int) throws -> LogPage {
        guard let h = FileHandle(forReadingAtPath: path) else {
            throw APIError(.notFound, "no such log yet: \((path as NSString).lastPathComponent) of this rank and attempt")
        }
        defer { try? h.close() }
        let size = Int(h.seekToEndOfFile())
        let start = tail.map { max(0, size - $0) } ?? min(offset ?? 0, size)
        h.seek(toFileOffset: UInt64(start))
        let data = h.readData(ofLength: min(limit, size - start))
        return LogPage(path: path, offset: start, next: start + data.count, size: size, text: String(decoding: data, as: UTF8.self))
    }

    struct CheckpointView: Encodable {
        var name: String
        var step: Int
        var bytes: Int
        var files: Int
        var latest: Bool
        var saveSeconds: Double?
    }

    static func checkpoints(run: String, saveSeconds: [Int: Double]) -> [CheckpointView] {
        let store = CheckpointStore(runDirectory: run)
        let latest = store.latest()
        return store.steps().map { step in
            let dir = store.path(step: step)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            let bytes = names.reduce(0) { sum, n in
                sum + ((try? FileManager.default.attributesOfItem(atPath: "\(dir)/\(n)")[.size] as? NSNumber)?.intValue ?? 0)
            }
            return CheckpointView(name: CheckpointStore.name(step: step), step: step, bytes: bytes, files: names.count,
                                  latest: step == latest, saveSeconds: saveSeconds[step])
        }
    }
}

/// What a run's events say about checkpoints, kept up to date by reading
/// only what was appended since the last look (one per run directory).
final class RunEventIndex: @unchecked Sendable {
    struct Summary: Sendable {
        var checkpointsSaved = 0
        var lastCheckpointBytes: Double?
        var lastCheckpointSeconds: Double?
        var saveSeconds: [Int: Double] = [:]
    }

    private let lock = NSLock()
    private var tails: [String: EventTail] = [:]
    private var summaries: [String: Summary] = [:]

    func summary(run: String) -> Summary {
        lock.lock()
        defer { lock.unlock() }
        let tail = tails[run] ?? EventTail(run: RunDirectory(run), fromStart: true)
        tails[run] = tail
        var s = summaries[run] ?? Summary()
        for e in tail.next() where e.event == .checkpoint {
            s.checkpointsSaved += 1
            s.lastCheckpointBytes = e.bytes.map(Double.init)
            s.lastCheckpointSeconds = e.seconds
            if let step = e.step, let sec = e.seconds { s.saveSeconds[step] = sec }
        }
        summaries[run] = s
        return s
    }
}
