import Foundation

/// Slurm, not the plan, chooses a batch job's nodes. Before any rank
/// starts, the batch script reads the allocation's node list back into the
/// plan (`herd place`): the plan's k-th host becomes the allocation's k-th
/// node, so the planner's grouping holds — a tensor-parallel group stays on
/// one node — and the ranks Slurm starts in blocks of `--ntasks-per-node`
/// (rank r on node r ÷ per-node) are where the plan says.
public enum SlurmAllocation {
    public struct Mismatch: Error, CustomStringConvertible {
        public var description: String
    }

    /// The plan with its hosts replaced by the allocation's nodes, in order.
    public static func place(_ plan: Plan, on nodes: [String], job: String) throws -> Plan {
        var hosts: [String] = []
        for r in plan.ranks where !hosts.contains(r.host) { hosts.append(r.host) }
        guard nodes.count == hosts.count else {
            throw Mismatch(description: "Slurm job \(job) was given \(nodes.count) node(s) (\(nodes.joined(separator: ", "))), the plan places its ranks on \(hosts.count)")
        }
        var placed = plan
        for i in placed.ranks.indices { placed.ranks[i].host = nodes[hosts.firstIndex(of: plan.ranks[i].host)!] }
        placed.allocation = job
        return placed
    }

    /// Ranks per node when every node of the plan holds the same number (what `--ntasks-per-node` can ask for).
    public static func ranksPerNode(_ plan: Plan) -> Int? {
        let counts = Dictionary(grouping: plan.ranks, by: \.host).values.map(\.count)
        return Set(counts).count == 1 ? counts.first : nil
    }

    /// One line for the batch job's log: which ranks run where.
    public static func describe(_ plan: Plan) -> String {
        var hosts: [String] = []
        for r in plan.ranks where !hosts.contains(r.host) { hosts.append(r.host) }
        return hosts.map { h in
            let ranks = plan.ranks.filter { $0.host == h }.map(\.rank)
            return "ranks \(ranks.first!)-\(ranks.last!) on \(h)"
        }.joined(separator: ", ")
    }
}
