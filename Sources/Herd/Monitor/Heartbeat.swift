import Foundation

/// What one rank last said about itself: a datagram to the coordinator's
/// heartbeat endpoint, or RUN/heartbeats/rank-N.json when the coordinator
/// does not acknowledge those (and at the rank's start and end).
/// `time` is when it was sent or written (a background thread does it every
/// heartbeat interval, so a stopped or dead process goes stale);
/// `progressTime` is when the training loop last moved (a step, an
/// evaluation, a checkpoint), so a rank stuck in a collective goes stale
/// there while its heartbeat stays fresh.
public struct HeartbeatRecord: Codable, Sendable, Equatable {
    public var rank: Int
    public var host: String
    public var pid: Int32
    public var step: Int
    public var phase: String
    public var time: Double
    public var progressTime: Double
    /// The rank's resident memory when the record was written, and its peak
    /// so far (ProcessMemory; absent in records older ranks wrote).
    public var residentBytes: Int?
    public var peakResidentBytes: Int?

    public init(rank: Int, host: String, pid: Int32, step: Int, phase: String, time: Double, progressTime: Double,
                residentBytes: Int? = nil, peakResidentBytes: Int? = nil) {
        self.rank = rank; self.host = host; self.pid = pid; self.step = step; self.phase = phase
        self.time = time; self.progressTime = progressTime
        self.residentBytes = residentBytes; self.peakResidentBytes = peakResidentBytes
    }

    public static func directory(run: String) -> String { RunDirectory(run).heartbeats }

    public static func file(run: String, rank: Int) -> String {
        (directory(run: run) as NSString).appendingPathComponent("rank-\(rank).json")
    }

    /// One rank's file, if it has written one that can be read.
    public static func read(run: String, rank: Int) -> HeartbeatRecord? {
        guard let data = FileManager.default.contents(atPath: file(run: run, rank: rank)) else { return nil }
        return try? JSONDecoder().decode(HeartbeatRecord.self, from: data)
    }

    /// Every rank's newest record (files that cannot be read yet are skipped).
    public static func readAll(run: String) -> [HeartbeatRecord] {
        let dir = directory(run: run)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasPrefix("rank-") && $0.hasSuffix(".json") }.compactMap { name in
            guard let data = FileManager.default.contents(atPath: (dir as NSString).appendingPathComponent(name)) else { return nil }
            return try? JSONDecoder().decode(HeartbeatRecord.self, from: data)
        }.sorted { $0.rank < $1.rank }
    }
}

/// A rank's heartbeat: a thread that sends the rank's record to the
/// coordinator every interval — a datagram, or when the coordinator does
/// not acknowledge those, its file rewritten (atomically, by rename) — and
/// a `progress` call for the training loop.
public final class Heartbeat: @unchecked Sendable {
    private let lock = NSLock()
    private var record: HeartbeatRecord
    private let path: String
    private let interval: Double
    private let sender: HeartbeatSender
    private let sendLock = NSLock()   // the thread's beats and stop's last one
    /// Without an acknowledgement for this long, the file is written too.
    private var fallbackAfter: Double { max(2 * interval, 1) }
    private var stopped = false
    /// A rank that has made no progress for this long exits by itself: it
    /// is stuck in a collective whose peers are gone (its node cut off, say,
    /// where no launcher can reach it to end it) and would wait forever.
    public var giveUpAfter: Double?

    public init(run: String, rank: Int, interval: Double) throws {
        let dir = HeartbeatRecord.directory(run: run)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        path = HeartbeatRecord.file(run: run, rank: rank)
        sender = HeartbeatSender(run: RunDirectory(run))
        let now = Date().timeIntervalSince1970
        record = HeartbeatRecord(rank: rank, host: ProcessInfo.processInfo.hostName, pid: getpid(), step: 0,
                                 phase: "starting", time: now, progressTime: now)
        self.interval = interval
        writeFile(record)
        let thread = Thread { [weak self] in
            while let self, !self.isStopped {
                Thread.sleep(forTimeInterval: self.interval)
                self.beat()
                self.giveUpIfStuck()
            }
        }
        thread.name = "heartbeat"
        thread.start()
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    private func giveUpIfStuck() {
        lock.lock()
        let r = record, stopped = self.stopped
        lock.unlock()
        guard let limit = giveUpAfter, !stopped else { return }
        let idle = Date().timeIntervalSince1970 - r.progressTime
        guard idle > limit else { return }
        FileHandle.standardError.write("herd: rank \(r.rank) on \(r.host) made no progress for \(Int(idle)) s (at step \(r.step) after \(r.phase)); its peers are gone or cut off: exiting\n".data(using: .utf8)!)
        try? FileManager.default.removeItem(atPath: path)
        _exit(3)
    }

    /// The last word: writes the final record and ends the thread.
    public func stop(phase: String) {
        lock.lock(); stopped = true; record.phase = phase; record.progressTime = Date().timeIntervalSince1970; lock.unlock()
        // Both: the coordinator hears it now, and the file outlives the coordinator.
        writeFile(beat())
    }

    /// The loop moved: `phase` is what it just finished (train, eval, checkpoint).
    public func progress(step: Int, phase: String) {
        lock.lock()
        record.step = step
        record.phase = phase
        record.progressTime = Date().timeIntervalSince1970
        lock.unlock()
    }

    /// One beat: the datagram, and the file when the coordinator has not acknowledged one lately.
    @discardableResult
    private func beat() -> HeartbeatRecord {
        let memory = ProcessMemory.current()
        lock.lock()
        record.time = Date().timeIntervalSince1970
        record.residentBytes = memory?.residentBytes
        record.peakResidentBytes = memory?.peakResidentBytes
        let r = record
        lock.unlock()
        sendLock.lock()
        let heard = sender.send(r, now: r.time, fallbackAfter: fallbackAfter)
        sendLock.unlock()
        if !heard { writeFile(r) }
        return r
    }

    private func writeFile(_ r: HeartbeatRecord) {
        guard let data = try? JSONEncoder().encode(r) else { return }
        try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
