import Foundation

/// Which coordinator watches a job, and until when. One coordinator per
/// job at a time: a coordinator takes the lease before it does anything
/// and renews it while it watches; another one started for the same job
/// (a second `herd coordinate`, `herd adopt`, a supervisor restarting it)
/// finds it held and exits. A lease held by a coordinator that died lapses
/// at `expires` — at once when the holder was on this host and its pid is
/// gone — so a new coordinator can take the job over. It lives in the
/// store rather than as a flock on one host: the store is what every
/// coordinator of the job opens, wherever it runs.
public struct CoordinatorLease: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var pid: Int
    public var expires: Double

    public init(host: String, pid: Int, expires: Double) { self.host = host; self.pid = pid; self.expires = expires }

    /// Long enough that a busy machine never lets a live coordinator's lease
    /// lapse between renewals (every few seconds); short enough that a job
    /// whose coordinator's host died is taken over within a minute.
    public static let defaultSeconds = 30.0

    public static var mine: (host: String, pid: Int) { (ProcessInfo.processInfo.hostName, Int(getpid())) }

    public var description: String {
        let left = expires - Date().timeIntervalSince1970
        return "coordinator pid \(pid) on \(host)" + (left > 0 ? String(format: " (its lease runs %.0f s more)", left) : " (its lease has lapsed)")
    }

    /// Whether a coordinator still holds it at `now`: unexpired, and not held
    /// by a process of this host that is gone.
    public func isLive(now: Double = Date().timeIntervalSince1970, thisHost: String = ProcessInfo.processInfo.hostName) -> Bool {
        guard expires > now else { return false }
        return host != thisHost || Spawn.isAlive(pid)
    }
}

/// The coordinator could not take the job: another one watches it.
public struct LeaseHeld: Error, CustomStringConvertible, Sendable {
    public var job: Int
    public var holder: CoordinatorLease
    public var description: String {
        "job \(job) is already watched by \(holder); this coordinator leaves it alone (herd status \(job) shows it)"
    }
}

extension JobStore {
    /// The job's lease as the store holds it (nil: no coordinator ever took it).
    public func lease(_ id: Int) throws -> CoordinatorLease? {
        try db.query("SELECT host, pid, expires FROM leases WHERE job_id = ?", [.int(Int64(id))]).first.map {
            CoordinatorLease(host: $0["host"]?.text ?? "", pid: $0["pid"]?.int ?? 0, expires: $0["expires"]?.double ?? 0)
        }
    }

    /// Takes the job's lease for this process for `seconds`, unless a live
    /// coordinator holds it: then throws `LeaseHeld` naming it. One
    /// statement decides, so two coordinators starting at once cannot both win.
    public func acquireLease(_ id: Int, seconds: Double = CoordinatorLease.defaultSeconds) throws {
        let me = CoordinatorLease.mine, now = Date().timeIntervalSince1970
        try db.transaction {
            if let held = try lease(id), held.isLive(now: now), !(held.host == me.host && held.pid == me.pid) {
                throw LeaseHeld(job: id, holder: held)
            }
            try db.execute("""
                INSERT INTO leases (job_id, host, pid, expires) VALUES (?, ?, ?, ?)
                ON CONFLICT(job_id) DO UPDATE SET host = excluded.host, pid = excluded.pid, expires = excluded.expires
                """, [.int(Int64(id)), .text(me.host), .int(Int64(me.pid)), .double(now + seconds)])
        }
    }

    /// Extends this process's lease; false when it is no longer this
    /// process's (it lapsed — the coordinator was stopped that long — and
    /// another coordinator took the job).
    @discardableResult
    public func renewLease(_ id: Int, seconds: Double = CoordinatorLease.defaultSeconds) throws -> Bool {
        let me = CoordinatorLease.mine
        return try db.transaction {
            guard let held = try lease(id), held.host == me.host, held.pid == me.pid else { return false }
            try db.execute("UPDATE leases SET expires = ? WHERE job_id = ?",
                           [.double(Date().timeIntervalSince1970 + seconds), .int(Int64(id))])
            return true
        }
    }

    /// Gives the lease up (the job ended, or this coordinator stops watching it).
    public func releaseLease(_ id: Int) throws {
        let me = CoordinatorLease.mine
        try db.execute("DELETE FROM leases WHERE job_id = ? AND host = ? AND pid = ?",
                       [.int(Int64(id)), .text(me.host), .int(Int64(me.pid))])
    }
}
