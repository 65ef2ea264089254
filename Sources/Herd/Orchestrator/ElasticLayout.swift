import Foundation

/// Under `restart.on_node_loss: shrink` a job is elastic in its data
/// parallelism: it runs with as many data-parallel ranks as the nodes that
/// answer can hold (never more than it was submitted with, always dividing
/// the global batch, so the loss curve is the same), and grows back when
/// lost nodes return. The checkpoint reshards either way.
public struct NodeFit: Sendable {
    /// The part of the job's cluster that can run ranks now.
    public var cluster: ClusterSpec
    /// What is missing (host names, or Slurm's nodes with their state), and why.
    public var lost: [String]
    public var why: String
    public var data: Int

    public init(cluster: ClusterSpec, lost: [String], why: String, data: Int) {
        self.cluster = cluster; self.lost = lost; self.why = why; self.data = data
    }
}

public enum ElasticLayout {
    /// Which of `full`'s hosts can run ranks now — mpirun probes the hosts in
    /// `probe` (all when nil; the others are taken as up); under Slurm, sinfo
    /// counts the partition's usable nodes — and the data degree they hold.
    public static func fit(_ full: ClusterSpec, probe: Set<String>? = nil, tensor: Int, maxData: Int, batch: Int,
                           timeout: Double, log: String) throws -> NodeFit {
        let hosts = full.hosts
        let rest: ClusterSpec, lost: [String], why: String
        switch full.launcher {
        case .mpirun:
            let asked = probe ?? Set(hosts)
            let alive = try NodeProbe.reachable(full.keeping(asked), timeout: timeout, log: log)
            lost = asked.subtracting(alive).sorted()
            rest = full.without(Set(lost))
            why = "mpirun cannot start a rank there"
        case .slurm:
            // Slurm places the job; what matters is how many of the partition's nodes it can use.
            let nodes = try SlurmLauncher.nodes(full)
            lost = nodes.unusable
            rest = full.keeping(first: min(hosts.count, nodes.usable.count))
            why = "Slurm has \(nodes.usable.count) node(s) up"
        }
        var data = min(maxData, rest.slots / tensor)
        while data > 0 && batch % data != 0 { data -= 1 }
        guard data > 0 else {
            throw JobStoreError(message: "lost \(lost.joined(separator: ", ")): the nodes that remain (\(rest.slots) slots) cannot hold one tensor-parallel group of \(tensor)")
        }
        return NodeFit(cluster: rest, lost: lost, why: why, data: data)
    }
}

/// While a shrunken job runs: every `interval` seconds, in the background
/// (a silent host keeps a probe waiting), asks whether the job's full
/// cluster can hold more data-parallel ranks than it runs with now.
final class NodeReturnWatch: @unchecked Sendable {
    private let lock = NSLock()
    private let interval: Double
    private let probe: @Sendable () throws -> NodeFit
    private let current: Int
    private var running = false, last: Double
    private var found: NodeFit?

    init(interval: Double, currentData: Int, probe: @escaping @Sendable () throws -> NodeFit) {
        self.interval = interval; self.current = currentData; self.probe = probe
        last = Date().timeIntervalSince1970
    }

    /// A larger layout once a probe has found one; starts a probe when one is due.
    func larger() -> NodeFit? {
        let now = Date().timeIntervalSince1970
        lock.lock(); defer { lock.unlock() }
        if let found { return found }
        guard !running, now - last >= interval else { return nil }
        running = true; last = now
        DispatchQueue.global().async { [self] in
            let fit = try? probe()
            lock.lock(); defer { lock.unlock() }
            running = false; last = Date().timeIntervalSince1970
            if let fit, fit.data > current { found = fit }
        }
        return nil
    }
}
