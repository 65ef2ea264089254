import Foundation

/// Which of a cluster's hosts can run a rank now: mpirun (under the
/// cluster's prefix and environment, as the job's ranks are started) runs
/// `true` on each host alone. A host that is powered off or cut off fails
/// or stays silent; the probe gives up on it after `timeout` seconds. Asked
/// before a restart whose manifest says to continue on the nodes that remain.
public enum NodeProbe {
    public static func reachable(_ cluster: ClusterSpec, timeout: Double = 20, log: String) throws -> Set<String> {
        var alive = Set<String>()
        for host in Set(cluster.hosts).sorted() {
            let pid = try MPILauncher.start(on: cluster, ["--host", "\(host):1", "-np", "1", "true"], log: log)
            let deadline = Date().addingTimeInterval(timeout)
            var status: Int32?
            while status == nil && Date() < deadline {
                status = Spawn.poll(pid)
                if status == nil { Thread.sleep(forTimeInterval: 0.1) }
            }
            if status == nil { Spawn.stopGroup(pid, grace: 1) }
            if status == 0 { alive.insert(host) }
        }
        return alive
    }
}

extension ClusterSpec {
    /// The cluster without some hosts (node groups left empty are dropped).
    public func without(_ hosts: Set<String>) -> ClusterSpec {
        var c = self
        c.nodes = nodes.map { g in var g = g; g.hosts.removeAll { hosts.contains($0) }; return g }.filter { !$0.hosts.isEmpty }
        return c
    }

    /// The cluster with only some of its hosts.
    public func keeping(_ hosts: Set<String>) -> ClusterSpec {
        without(Set(hosts).subtracting(hosts))
    }
}

extension ClusterSpec {
    /// The cluster's first `count` hosts (under Slurm the names are stand-ins:
    /// the allocation's nodes replace them; only how many matters).
    public func keeping(first count: Int) -> ClusterSpec {
        var c = self, left = count
        c.nodes = nodes.map { g in
            var g = g
            g.hosts = Array(g.hosts.prefix(left)); left -= g.hosts.count
            return g
        }.filter { !$0.hosts.isEmpty }
        return c
    }
}
