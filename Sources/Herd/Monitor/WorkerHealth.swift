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
        /// Its process is gone (on this host, or on another through the cluster's agent) while the job is still live.
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

    /// The ranks 0..<world of a run: for each, the newer of its heartbeat
    /// file and the row the coordinator last wrote into the store (`stored`;
    /// it hears most ranks over the network and writes their rows every few
    /// seconds). A silent rank on this host is dead when its process is
    /// gone; one on another host, when `agent` reaches that host and its
    /// process is not there (a host that does not answer leaves it stale).
    public static func assess(run: String, world: Int, heartbeatSeconds: Double, jobEnded: Bool,
                              stored: [WorkerRecord] = [], agent: RemoteAgent? = nil,
                              now: Double = Date().timeIntervalSince1970,
                              thisHost: String = ProcessInfo.processInfo.hostName) -> [WorkerHealth] {
        var newest: [Int: HeartbeatRecord] = [:]
        for w in stored where w.rank < world {
            newest[w.rank] = HeartbeatRecord(rank: w.rank, host: w.host, pid: Int32(truncatingIfNeeded: w.pid), step: w.step, phase: w.phase,
                                             time: w.heartbeat, progressTime: w.progress,
                                             residentBytes: w.residentBytes, peakResidentBytes: w.peakResidentBytes)
        }
        for b in HeartbeatRecord.readAll(run: run) where b.rank < world && b.time > (newest[b.rank]?.time ?? -.infinity) {
            newest[b.rank] = b
        }
        let staleAfter = staleAfter(heartbeatSeconds: heartbeatSeconds)
        var health = newest.values.sorted { $0.rank < $1.rank }.map { b -> WorkerHealth in
            let age = max(0, now - b.time)
            let status: Status
            if b.phase == "done" || jobEnded {
                status = .exited
            } else if b.host == thisHost && !Spawn.isAlive(Int(b.pid)) {
                status = .dead
            } else if age > staleAfter {
                status = .stale
            } else {
                status = .ok
            }
            return WorkerHealth(rank: b.rank, host: b.host, pid: b.pid, step: b.step, phase: b.phase,
                                heartbeatAgeSeconds: age, progressAgeSeconds: max(0, now - b.progressTime), status: status,
                                residentBytes: b.residentBytes, peakResidentBytes: b.peakResidentBytes)
        }
        // Stale ranks on other hosts: one question per host, all hosts at once.
        guard let agent else { return health }
        let remote = Dictionary(grouping: health.indices.filter { health[$0].status == .stale && health[$0].host != thisHost }) { health[$0].host }
        let hosts = Array(remote.keys)
        let answers = UnsafeSendableBox([Set<Int32>?](repeating: nil, count: hosts.count))
        DispatchQueue.concurrentPerform(iterations: hosts.count) { i in
            let alive = agent.alive(remote[hosts[i]]!.map { health[$0].pid }, on: hosts[i], timeout: 5)
            answers.set(i, alive)
        }
        for (i, host) in hosts.enumerated() {
            guard let alive = answers.value[i] else { continue }
            for r in remote[host]! where !alive.contains(health[r].pid) { health[r].status = .dead }
        }
        return health
    }
}

/// An array several threads fill, each its own index.
final class UnsafeSendableBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var value: [T]
    init(_ value: [T]) { self.value = value }
    func set(_ i: Int, _ v: T) { lock.lock(); value[i] = v; lock.unlock() }
}
