import Foundation

/// One rank as a person watching a job needs to see it: its last
/// heartbeat and progress, how old they are, and a verdict — a dead rank
/// (its process is gone) and a stale one (silent for several heartbeat
/// intervals) must stand out before the coordinator acts on them.
public struct WorkerHealth: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable, CaseIterable {
        /// Beating on time.
        case ok
        /// No heartbeat for more than `staleAfter` seconds: stopped, hung, or its node cut off.
        case stale
        /// Its process is gone (checked on this host) while the job is still live.
        case dead
        /// Finished its work, or its job has ended.
        case exited
    }

    public var rank: Int
    public var host: String
    public var pid: Int32
    public var step: Int
    public var phase: String
    public var heartbeatAgeSeconds: Double
    public var progressAgeSeconds: Double
    public var status: Status
    /// Resident memory at the last heartbeat, and the rank's peak so far.
    public var residentBytes: Int? = nil
    public var peakResidentBytes: Int? = nil

    /// A heartbeat older than this many intervals makes a rank stale...
    public static let staleIntervals = 3.0
    /// ...and never younger than this: with sub-second heartbeats, a busy
    /// machine delays a write that long without anything being wrong.
    public static let minimumStaleSeconds = 2.0

    public static func staleAfter(heartbeatSeconds: Double) -> Double {
        max(staleIntervals * heartbeatSeconds, minimumStaleSeconds)
    }

    /// The ranks 0..<world of a run, from their heartbeat files (fresher than
    /// the store, which the coordinator updates on its own schedule).
    public static func assess(run: String, world: Int, heartbeatSeconds: Double, jobEnded: Bool,
                              now: Double = Date().timeIntervalSince1970,
                              thisHost: String = ProcessInfo.processInfo.hostName) -> [WorkerHealth] {
        HeartbeatRecord.readAll(run: run).filter { $0.rank < world }.map { b in
            let age = max(0, now - b.time)
            let status: Status
            if b.phase == "done" || jobEnded {
                status = .exited
            } else if b.host == thisHost && !Spawn.isAlive(Int(b.pid)) {
                status = .dead
            } else if age > staleAfter(heartbeatSeconds: heartbeatSeconds) {
                status = .stale
            } else {
                status = .ok
            }
            return WorkerHealth(rank: b.rank, host: b.host, pid: b.pid, step: b.step, phase: b.phase,
                                heartbeatAgeSeconds: age, progressAgeSeconds: max(0, now - b.progressTime), status: status,
                                residentBytes: b.residentBytes, peakResidentBytes: b.peakResidentBytes)
        }
    }
}
