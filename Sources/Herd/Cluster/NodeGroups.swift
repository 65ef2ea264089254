import Foundation

extension ClusterSpec.NodeGroup {
    static let fields = ["hosts", "count", "prefix", "slots", "cores", "memory_gb", "device_memory_gb", "peak_tflops", "device", "memory_bandwidth_gbs"]

    /// The `nodes:` list, at least one group.
    static func parseList(in top: YAMLFields) throws(ManifestError) -> [Self] {
        guard let list = top.mapping["nodes"]?.sequence, !list.isEmpty else {
            throw top.error("nodes", "required: a list of node groups (hosts or count, slots, cores, memory_gb, peak_tflops)")
        }
        var groups: [Self] = []
        for (i, node) in list.enumerated() {
            groups.append(try parse(YAMLFields(node, path: "nodes[\(i)]", file: top.file, base: top.base)))
        }
        return groups
    }

    /// One group of like nodes: their hosts listed, or `count` of them
    /// named prefix-0, prefix-1, ...; what each holds and computes.
    static func parse(_ f: YAMLFields) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: fields)
        var hosts: [String] = []
        if let h = f.mapping["hosts"] {
            guard let seq = h.sequence, !seq.isEmpty else { throw f.error("hosts", "expected a list of host names") }
            hosts = seq.compactMap { $0.string }
        } else {
            // Named one by one below: a bound keeps a typo of 10^12 from exhausting memory.
            let count = try f.requiredInt("count", min: 1, max: JobManifest.Limits.ranks, "how many such nodes (or list hosts)")
            let prefix = try f.string("prefix") ?? "node"
            hosts = (0..<count).map { "\(prefix)-\($0)" }
        }
        return Self(
            hosts: hosts, slots: try f.requiredInt("slots", min: 1, max: JobManifest.Limits.ranks, "ranks per node"),
            cores: try f.requiredInt("cores", min: 1, max: JobManifest.Limits.threads, "cores per node"),
            memoryGB: try f.requiredDouble("memory_gb", min: 0.001, "memory per node in GB"),
            deviceMemoryGB: try f.double("device_memory_gb", min: 0.001),
            peakTFLOPs: try f.requiredDouble("peak_tflops", min: 0, "peak TFLOP/s of one slot"),
            device: try f.string("device") ?? "cpu",
            memoryBandwidthGBs: try f.double("memory_bandwidth_gbs", min: 0.001))
    }
}
