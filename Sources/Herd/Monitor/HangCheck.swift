import Foundation

/// Decides from the ranks' heartbeats whether an attempt has hung: a rank
/// that never reported, whose heartbeat went stale (the process is stopped,
/// dead or its node gone), or that has made no progress (stuck in a
/// collective behind such a rank, or in a kernel) — each for longer than
/// the manifest's monitor.hang_timeout_seconds.
public enum HangCheck {
    public static func check(_ records: [HeartbeatRecord], world: Int, runningSince: Double,
                             now: Double, timeout: Double) -> String? {
        let byRank = Dictionary(records.map { ($0.rank, $0) }, uniquingKeysWith: { a, _ in a })
        for rank in 0..<world {
            guard let r = byRank[rank] else {
                if now - runningSince > timeout {
                    return String(format: "rank %d sent no heartbeat in the %.0f s since it started (hang timeout %.0f s)", rank, now - runningSince, timeout)
                }
                continue
            }
            if now - r.time > timeout {
                return String(format: "rank %d (pid %d on %@) sent no heartbeat for %.0f s, last at step %d (hang timeout %.0f s)",
                              rank, r.pid, r.host, now - r.time, r.step, timeout)
            }
        }
        // Stale progress everywhere but fresh heartbeats: name the slowest rank.
        if let r = records.min(by: { $0.progressTime < $1.progressTime }), records.count == world, now - r.progressTime > timeout {
            return String(format: "rank %d (pid %d on %@) made no progress for %.0f s, at step %d after %@ (hang timeout %.0f s)",
                          r.rank, r.pid, r.host, now - r.progressTime, r.step, r.phase, timeout)
        }
        return nil
    }
}
