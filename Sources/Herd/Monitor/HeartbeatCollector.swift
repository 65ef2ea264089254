import Foundation

/// How ranks report to their coordinator: datagrams to its heartbeat
/// endpoint (files only for ranks it does not hear), or one file per rank
/// read every poll — the older design, kept for sites whose network drops
/// UDP between nodes and the coordinator's host (HERD_HEARTBEATS=files).
public enum HeartbeatTransport: String, Sendable, CaseIterable {
    case network, files

    public static var configured: HeartbeatTransport {
        ProcessInfo.processInfo.environment["HERD_HEARTBEATS"].flatMap(HeartbeatTransport.init(rawValue:)) ?? .network
    }
}

/// The coordinator's view of an attempt's ranks each poll: what the
/// endpoint heard, and for a rank it has not heard within `fileAfter`
/// seconds, that rank's file (which the rank writes when its datagrams go
/// unacknowledged). With every rank heard, no file is opened.
public final class HeartbeatCollector {
    public let run: String
    public let endpoint: HeartbeatEndpoint?
    public let fileAfter: Double
    /// Files opened by the last `collect` (what the endpoint saves).
    public private(set) var filesRead = 0

    public init(run: String, endpoint: HeartbeatEndpoint?, fileAfter: Double) {
        self.run = run; self.endpoint = endpoint; self.fileAfter = fileAfter
    }

    public func collect(world: Int, now: Double = Date().timeIntervalSince1970) -> [HeartbeatRecord] {
        guard let endpoint else {
            let all = HeartbeatRecord.readAll(run: run)
            filesRead = all.count
            return all
        }
        var table = endpoint.records()
        filesRead = 0
        for rank in 0..<world {
            let heard = table[rank]?.time ?? -.infinity
            guard now - heard > fileAfter else { continue }
            filesRead += 1
            if let f = HeartbeatRecord.read(run: run, rank: rank), f.time > heard { table[rank] = f }
        }
        return table.values.filter { $0.rank < world }.sorted { $0.rank < $1.rank }
    }
}
