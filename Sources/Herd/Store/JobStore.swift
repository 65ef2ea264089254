import Foundation

/// A job's life: queued → running ⇄ restarting → succeeded | failed | cancelled.
public enum JobState: String, Codable, Sendable, CaseIterable {
    case queued, running, restarting, succeeded, failed, cancelled
    public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// One job as the store holds it: what was submitted, where it runs, and
/// the latest of what its workers reported.
public struct JobRecord: Codable, Sendable, Equatable {
    public var id: Int
    public var name: String
    /// Absolute paths, and the directory relative paths in the manifest are taken from.
    public var manifest: String
    public var cluster: String
    public var workdir: String
    public var runDir: String
    public var launcher: String
    public var state: JobState
    public var data: Int
    public var tensor: Int
    /// Command-line overrides the job was submitted with (steps, corpus).
    public var stepsOverride: Int?
    public var corpusOverride: String?
    public var totalSteps: Int
    public var step: Int
    public var loss: Double?
    public var validationLoss: Double?
    public var tokensPerSecond: Double?
    /// A prepare job's input bytes per second (nil for training jobs).
    public var bytesPerSecond: Double?
    public var etaSeconds: Double?
    public var lastCheckpointStep: Int?
    public var attempt: Int
    public var restarts: Int
    public var maxRestarts: Int
    public var coordinatorPID: Int?
    /// mpirun's pid or Slurm's job id of the current attempt.
    public var launchID: String?
    public var cancelRequested: Bool
    public var message: String?
    public var created: Double
    public var updated: Double

    public var world: Int { data * tensor }

    /// A new job, queued, nothing reported yet (the store assigns the id).
    public init(name: String, manifest: String, cluster: String, workdir: String, runDir: String, launcher: String,
                data: Int, tensor: Int, totalSteps: Int, maxRestarts: Int,
                stepsOverride: Int? = nil, corpusOverride: String? = nil, lastCheckpointStep: Int? = nil) {
        let now = Date().timeIntervalSince1970
        id = 0; self.name = name; self.manifest = manifest; self.cluster = cluster; self.workdir = workdir
        self.runDir = runDir; self.launcher = launcher; state = .queued; self.data = data; self.tensor = tensor
        self.stepsOverride = stepsOverride; self.corpusOverride = corpusOverride; self.totalSteps = totalSteps
        step = 0; self.lastCheckpointStep = lastCheckpointStep; attempt = 0; restarts = 0; self.maxRestarts = maxRestarts
        cancelRequested = false; created = now; updated = now
    }
}

/// One rank's latest heartbeat, as the coordinator last read it.
public struct WorkerRecord: Codable, Sendable, Equatable {
    public var rank: Int
    public var host: String
    public var pid: Int
    public var step: Int
    public var phase: String
    public var heartbeat: Double
    public var progress: Double
    /// Resident memory at the last heartbeat, and the rank's peak so far.
    public var residentBytes: Int?
    public var peakResidentBytes: Int?

    public init(rank: Int, host: String, pid: Int, step: Int, phase: String, heartbeat: Double, progress: Double,
                residentBytes: Int? = nil, peakResidentBytes: Int? = nil) {
        self.rank = rank; self.host = host; self.pid = pid; self.step = step; self.phase = phase
        self.heartbeat = heartbeat; self.progress = progress
        self.residentBytes = residentBytes; self.peakResidentBytes = peakResidentBytes
    }
}

/// A restart (or a resume by hand), why, and from which checkpoint.
public struct RestartRecord: Codable, Sendable, Equatable {
    public var attempt: Int
    public var time: Double
    public var reason: String
    public var fromStep: Int?
}

public struct JobStoreError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The jobs of this machine in SQLite: `$HERD_HOME/jobs.sqlite` (default
/// `~/.herd`). Every coordinator writes its job's row; the CLI reads and
/// flags cancels. It lives outside any run directory, so it outlives
/// coordinators, and a restarted coordinator finds its job where it was.
public final class JobStore: @unchecked Sendable {
    public let db: SQLiteDatabase
    /// The directory holding jobs.sqlite (coordinators started for this store are told it).
    public let home: String

    public static var defaultHome: String {
        if let h = ProcessInfo.processInfo.environment["HERD_HOME"], !h.isEmpty { return h }
        return (NSHomeDirectory() as NSString).appendingPathComponent(".herd")
    }

    public init(home: String = JobStore.defaultHome) throws {
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        self.home = home
        db = try SQLiteDatabase(path: (home as NSString).appendingPathComponent("jobs.sqlite"))
        try migrate()
    }

    /// Schema versions by `PRAGMA user_version`; each step runs once.
    private func migrate() throws {
        let version = try db.query("PRAGMA user_version").first?["user_version"]?.int ?? 0
        if version < 1 {
            try db.transaction {
                try db.execute("""
                    CREATE TABLE IF NOT EXISTS jobs (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        name TEXT NOT NULL, manifest TEXT NOT NULL, cluster TEXT NOT NULL,
                        workdir TEXT NOT NULL, run_dir TEXT NOT NULL, launcher TEXT NOT NULL,
                        state TEXT NOT NULL, data INTEGER NOT NULL, tensor INTEGER NOT NULL,
                        steps_override INTEGER, corpus_override TEXT,
                        total_steps INTEGER NOT NULL, step INTEGER NOT NULL DEFAULT 0,
                        loss REAL, val_loss REAL, tokens_per_s REAL, eta_s REAL, checkpoint_step INTEGER,
                        attempt INTEGER NOT NULL DEFAULT 0, restarts INTEGER NOT NULL DEFAULT 0,
                        max_restarts INTEGER NOT NULL, coordinator_pid INTEGER, launch_id TEXT,
                        cancel_requested INTEGER NOT NULL DEFAULT 0, message TEXT,
                        created REAL NOT NULL, updated REAL NOT NULL)
                    """)
                try db.execute("""
                    CREATE TABLE IF NOT EXISTS restarts (
                        job_id INTEGER NOT NULL REFERENCES jobs(id), attempt INTEGER NOT NULL,
                        time REAL NOT NULL, reason TEXT NOT NULL, from_step INTEGER)
                    """)
                try db.execute("""
                    CREATE TABLE IF NOT EXISTS workers (
                        job_id INTEGER NOT NULL REFERENCES jobs(id), rank INTEGER NOT NULL,
                        host TEXT NOT NULL, pid INTEGER NOT NULL, step INTEGER NOT NULL, phase TEXT NOT NULL,
                        heartbeat REAL NOT NULL, progress REAL NOT NULL, PRIMARY KEY (job_id, rank))
                    """)
                try db.execute("PRAGMA user_version = 1")
            }
        }
        if version < 2 {
            // A prepare job's rate: input bytes per second.
            try db.transaction {
                try db.execute("ALTER TABLE jobs ADD COLUMN bytes_per_s REAL")
                try db.execute("PRAGMA user_version = 2")
            }
        }
        if version < 3 {
            // Each rank's resident memory and its peak, from its heartbeat.
            try db.transaction {
                try db.execute("ALTER TABLE workers ADD COLUMN rss INTEGER")
                try db.execute("ALTER TABLE workers ADD COLUMN peak_rss INTEGER")
                try db.execute("PRAGMA user_version = 3")
            }
        }
        if version < 4 {
            // Which coordinator watches a job, until when (CoordinatorLease).
            try db.transaction {
                try db.execute("""
                    CREATE TABLE IF NOT EXISTS leases (
                        job_id INTEGER PRIMARY KEY REFERENCES jobs(id), host TEXT NOT NULL,
                        pid INTEGER NOT NULL, expires REAL NOT NULL)
                    """)
                try db.execute("PRAGMA user_version = 4")
            }
        }
    }

    // MARK: jobs

    public func insert(_ job: JobRecord) throws -> Int {
        try db.transaction {
            try db.execute("""
                INSERT INTO jobs (name, manifest, cluster, workdir, run_dir, launcher, state, data, tensor,
                    steps_override, corpus_override, total_steps, max_restarts, created, updated)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(job.name), .text(job.manifest), .text(job.cluster), .text(job.workdir), .text(job.runDir),
                      .text(job.launcher), .text(job.state.rawValue), .int(Int64(job.data)), .int(Int64(job.tensor)),
                      optional(job.stepsOverride), optional(job.corpusOverride), .int(Int64(job.totalSteps)),
                      .int(Int64(job.maxRestarts)), .double(job.created), .double(job.updated)])
            return db.lastInsertRowID
        }
    }

    /// The job with this id, or an error that says which ids exist.
    public func job(_ id: Int) throws -> JobRecord {
        guard let row = try db.query("SELECT * FROM jobs WHERE id = ?", [.int(Int64(id))]).first else {
            let known = try db.query("SELECT id FROM jobs ORDER BY id DESC LIMIT 5").compactMap { $0["id"]?.int }
            throw JobStoreError(message: "no job \(id) in the job store \(db.path)"
                + (known.isEmpty ? " (it holds no jobs yet; herd submit starts one)" : " (newest: \(known.map(String.init).joined(separator: ", ")); herd status lists them)"))
        }
        return Self.record(row)
    }

    /// Parses a job id as the CLI receives it.
    public func job(named text: String) throws -> JobRecord {
        guard let id = Int(text.hasPrefix("#") ? String(text.dropFirst()) : text) else {
            throw JobStoreError(message: "\"\(text)\" is not a job id: expected the number herd submit printed (herd status lists them)")
        }
        return try job(id)
    }

    public func jobs() throws -> [JobRecord] {
        try db.query("SELECT * FROM jobs ORDER BY id").map(Self.record)
    }

    /// Sets the named columns of a job (and `updated`).
    public func update(_ id: Int, _ fields: [String: SQLiteValue]) throws {
        let keys = fields.keys.sorted()
        let sets = (keys + ["updated"]).map { "\($0) = ?" }.joined(separator: ", ")
        try db.execute("UPDATE jobs SET \(sets) WHERE id = ?",
                       keys.map { fields[$0]! } + [.double(Date().timeIntervalSince1970), .int(Int64(id))])
    }

    public func setState(_ id: Int, _ state: JobState, message: String? = nil) throws {
        var f: [String: SQLiteValue] = ["state": .text(state.rawValue)]
        if let message { f["message"] = .text(message) }
        try update(id, f)
    }

    public func recordRestart(_ id: Int, attempt: Int, reason: String, fromStep: Int?) throws {
        try db.execute("INSERT INTO restarts (job_id, attempt, time, reason, from_step) VALUES (?, ?, ?, ?, ?)",
                       [.int(Int64(id)), .int(Int64(attempt)), .double(Date().timeIntervalSince1970), .text(reason), optional(fromStep)])
    }

    public func restarts(_ id: Int) throws -> [RestartRecord] {
        try db.query("SELECT * FROM restarts WHERE job_id = ? ORDER BY rowid", [.int(Int64(id))]).map {
            RestartRecord(attempt: $0["attempt"]?.int ?? 0, time: $0["time"]?.double ?? 0,
                          reason: $0["reason"]?.text ?? "", fromStep: $0["from_step"]?.int)
        }
    }

    // MARK: workers

    /// Replaces every rank's row of the job.
    public func setWorkers(_ id: Int, _ workers: [WorkerRecord]) throws {
        try db.transaction {
            try db.execute("DELETE FROM workers WHERE job_id = ?", [.int(Int64(id))])
            try writeWorkers(id, workers)
        }
    }

    /// Writes these ranks' rows, leaving the others as they are.
    public func upsertWorkers(_ id: Int, _ workers: [WorkerRecord]) throws {
        try db.transaction { try writeWorkers(id, workers) }
    }

    private func writeWorkers(_ id: Int, _ workers: [WorkerRecord]) throws {
        try db.executeMany("INSERT OR REPLACE INTO workers (job_id, rank, host, pid, step, phase, heartbeat, progress, rss, peak_rss) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           workers.map { w in
                               [.int(Int64(id)), .int(Int64(w.rank)), .text(w.host), .int(Int64(w.pid)), .int(Int64(w.step)),
                                .text(w.phase), .double(w.heartbeat), .double(w.progress), optional(w.residentBytes), optional(w.peakResidentBytes)]
                           })
    }

    public func workers(_ id: Int) throws -> [WorkerRecord] {
        try db.query("SELECT * FROM workers WHERE job_id = ? ORDER BY rank", [.int(Int64(id))]).map {
            WorkerRecord(rank: $0["rank"]?.int ?? 0, host: $0["host"]?.text ?? "", pid: $0["pid"]?.int ?? 0,
                         step: $0["step"]?.int ?? 0, phase: $0["phase"]?.text ?? "",
                         heartbeat: $0["heartbeat"]?.double ?? 0, progress: $0["progress"]?.double ?? 0,
                         residentBytes: $0["rss"]?.int, peakResidentBytes: $0["peak_rss"]?.int)
        }
    }

    // MARK: rows

    private func optional(_ v: Int?) -> SQLiteValue { v.map { .int(Int64($0)) } ?? .null }
    private func optional(_ v: String?) -> SQLiteValue { v.map { .text($0) } ?? .null }

    static func record(_ r: [String: SQLiteValue]) -> JobRecord {
        var j = JobRecord(name: r["name"]?.text ?? "", manifest: r["manifest"]?.text ?? "", cluster: r["cluster"]?.text ?? "",
                          workdir: r["workdir"]?.text ?? "", runDir: r["run_dir"]?.text ?? "", launcher: r["launcher"]?.text ?? "",
                          data: r["data"]?.int ?? 1, tensor: r["tensor"]?.int ?? 1, totalSteps: r["total_steps"]?.int ?? 0,
                          maxRestarts: r["max_restarts"]?.int ?? 0, stepsOverride: r["steps_override"]?.int,
                          corpusOverride: r["corpus_override"]?.text, lastCheckpointStep: r["checkpoint_step"]?.int)
        j.id = r["id"]?.int ?? 0
        j.state = JobState(rawValue: r["state"]?.text ?? "") ?? .failed
        j.step = r["step"]?.int ?? 0
        j.loss = r["loss"]?.double
        j.validationLoss = r["val_loss"]?.double
        j.tokensPerSecond = r["tokens_per_s"]?.double
        j.bytesPerSecond = r["bytes_per_s"]?.double
        j.etaSeconds = r["eta_s"]?.double
        j.attempt = r["attempt"]?.int ?? 0
        j.restarts = r["restarts"]?.int ?? 0
        j.coordinatorPID = r["coordinator_pid"]?.int
        j.launchID = r["launch_id"]?.text
        j.cancelRequested = (r["cancel_requested"]?.int ?? 0) != 0
        j.message = r["message"]?.text
        j.created = r["created"]?.double ?? 0
        j.updated = r["updated"]?.double ?? 0
        return j
    }
}
