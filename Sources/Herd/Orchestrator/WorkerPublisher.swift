import Foundation

/// Writes an attempt's ranks into the store's workers table only when
/// something a reader sees has changed — a rank's step, phase, pid or host,
/// a rank new or gone — or when the row's heartbeat is older than `refresh`
/// seconds, so that `herd status`, `herd watch`, the dashboard and
/// /metrics see ages off by at most that. At 16,384 ranks rewriting every
/// row every poll was most of the coordinator's work.
public final class WorkerPublisher {
    let store: JobStore
    let jobID: Int
    let refresh: Double
    private var written: [Int: WorkerRecord] = [:]
    /// Rows the last `publish` wrote.
    public private(set) var rowsWritten = 0

    public init(store: JobStore, jobID: Int, refresh: Double) {
        self.store = store; self.jobID = jobID; self.refresh = refresh
    }

    /// A new attempt: its ranks replace the last one's.
    public func reset() throws {
        written = [:]
        try store.setWorkers(jobID, [])
    }

    public func publish(_ beats: [HeartbeatRecord]) throws {
        var changed: [WorkerRecord] = []
        for b in beats {
            let w = WorkerRecord(rank: b.rank, host: b.host, pid: Int(b.pid), step: b.step, phase: b.phase, heartbeat: b.time,
                                 progress: b.progressTime, residentBytes: b.residentBytes, peakResidentBytes: b.peakResidentBytes)
            if let old = written[b.rank], old.host == w.host, old.pid == w.pid, old.step == w.step, old.phase == w.phase,
               w.heartbeat - old.heartbeat < refresh { continue }
            changed.append(w)
        }
        rowsWritten = changed.count
        guard !changed.isEmpty else { return }
        try store.upsertWorkers(jobID, changed)
        for w in changed { written[w.rank] = w }
    }
}
