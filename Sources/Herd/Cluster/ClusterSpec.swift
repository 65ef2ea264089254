import Foundation
import Yams

/// Where jobs run (`clusters/*.yaml`): the launcher and the nodes, with
/// what the planner needs to place ranks and estimate memory and time.
public struct ClusterSpec: Sendable, Codable, Equatable {
    public enum Launcher: String, Sendable, Codable, CaseIterable { case mpirun, slurm }
    /// How a Slurm batch job starts its ranks inside the allocation: mpirun
    /// (OpenMPI reads the allocation and starts its daemons with srun), or
    /// `srun --mpi=pmix` (Slurm starts every rank itself; a node failure then
    /// ends the job NODE_FAIL and Slurm requeues it).
    public enum StepLauncher: String, Sendable, Codable, CaseIterable { case mpirun, srun }

    public struct NodeGroup: Sendable, Codable, Equatable {
        /// Host names: `hosts` listed, or `count` nodes named prefix-0, prefix-1, ...
        public var hosts: [String]
        /// Ranks a node runs (cores on a CPU node, GPUs on a GPU node).
        public var slots: Int
        public var cores: Int
        public var memoryGB: Double
        /// Memory of one slot's device when ranks run on accelerators (GPU memory).
        public var deviceMemoryGB: Double?
        /// Peak FLOP/s of one slot, in TFLOP/s (measured sgemm here, or a device's datasheet).
        public var peakTFLOPs: Double
        public var device: String
        /// Memory bandwidth of one slot's device in GB/s (a datasheet's:
        /// A100-80GB SXM 2039); what bandwidth-bound decoding is priced at.
        public var memoryBandwidthGBs: Double? = nil
    }

    public var file: String
    public var name: String
    public var launcher: Launcher
    public var partition: String?
    public var account: String?
    /// The slurm.conf Slurm's commands read (SLURM_CONF), when not the system's.
    public var slurmConf: String?
    public var nodes: [NodeGroup]
    /// The model-FLOPs utilisation time estimates assume.
    public var utilization: Double
    /// The command the launcher's commands (mpirun; sbatch, squeue, scontrol,
    /// scancel, sinfo) run under: an argv, e.g. a login node's wrapper, or
    /// `scripts/herd-sim exec head` for the simulated nodes; and variables
    /// set for them and the ranks (e.g. OMPI_MCA_plm_rsh_agent).
    public var launcherPrefix: [String] = []
    public var environment: [String: String] = [:]
    /// Slurm: how the batch job starts the ranks.
    public var stepLauncher: StepLauncher = .mpirun

    public var slots: Int { nodes.reduce(0) { $0 + $1.hosts.count * $1.slots } }
    /// Every node's host name, in order.
    public var hosts: [String] { nodes.flatMap(\.hosts) }

    public static func load(path: String) throws(ManifestError) -> ClusterSpec {
        try parse(yaml: try YAMLFields.text(path: path, what: "cluster file"), file: path)
    }

    static let topFields = ["name", "launcher", "partition", "account", "slurm_conf", "nodes", "utilization", "launcher_prefix",
                            "environment", "step_launcher"]

    /// The node groups parse themselves (NodeGroups.swift), and so do the
    /// launcher's settings (LauncherFields.swift); `validate` then checks
    /// the rules between fields.
    public static func parse(yaml text: String, file path: String) throws(ManifestError) -> ClusterSpec {
        let top = try YAMLFields.top(yaml: text, file: path, what: "cluster file", base: FileManager.default.currentDirectoryPath)
        try top.rejectUnknown(allowed: topFields)
        let launcher = try Launcher.parse(top)
        let nodes = try NodeGroup.parseList(in: top)
        var spec = ClusterSpec(file: path, name: try top.string("name") ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension,
                               launcher: launcher, partition: try top.string("partition"), account: try top.string("account"),
                               slurmConf: try top.string("slurm_conf"), nodes: nodes, utilization: try top.double("utilization", min: 0.01, max: 1) ?? 0.4)
        spec.launcherPrefix = try parseLauncherPrefix(top)
        spec.stepLauncher = try StepLauncher.parse(top, launcher: launcher)
        spec.environment = try parseEnvironment(top)
        try spec.validate(top)
        return spec
    }

    /// The rules between fields: the slurm launcher needs a partition.
    func validate(_ top: YAMLFields) throws(ManifestError) {
        if launcher == .slurm, !top.has("partition") {
            throw top.error("partition", "required for the slurm launcher")
        }
    }

    /// The commands the launcher runs, which must be installed before
    /// anything is submitted.
    public var launcherCommands: [String] {
        switch launcher {
        case .mpirun: return ["mpirun"]
        case .slurm: return ["sbatch", "scontrol", "scancel", "sinfo"] + (stepLauncher == .srun ? ["srun"] : ["mpirun"])
        }
    }

    public func checkLauncherInstalled() throws(ManifestError) {
        for c in launcherCommands where Spawn.which(c) == nil {
            throw ManifestError(file: file, field: "launcher",
                                message: "the \(launcher.rawValue) launcher needs `\(c)`, which is not on PATH (\(launcher == .mpirun ? "Debian's openmpi-bin" : "Debian's slurm-wlm"); make setup installs it)")
        }
    }

    /// This machine as a one-node cluster with a slot per rank of the job
    /// (ranks share its cores and memory).
    public static func thisMachine(slots: Int, cores: Int) -> ClusterSpec {
        ClusterSpec(file: "this machine", name: ProcessInfo.processInfo.hostName, launcher: .mpirun, partition: nil, account: nil, slurmConf: nil,
                    nodes: [NodeGroup(hosts: [ProcessInfo.processInfo.hostName], slots: slots, cores: cores,
                                      memoryGB: Double(ProcessInfo.processInfo.physicalMemory) / 1e9 * 0.9,
                                      deviceMemoryGB: nil, peakTFLOPs: 0.1, device: "cpu")],
                    utilization: 0.5)
    }

    /// The host of each slot, in rank order (nodes filled one after another).
    public var slotHosts: [(host: String, group: Int)] {
        nodes.enumerated().flatMap { g, n in n.hosts.flatMap { h in Array(repeating: (h, g), count: n.slots) } }
    }
}

extension ClusterSpec {
    /// Writes the cluster as resolved into a run directory (RUN/cluster.json):
    /// the coordinator reads it there, never the cluster's YAML again.
    public func write(to run: RunDirectory) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try run.create()
        try enc.encode(self).write(to: URL(fileURLWithPath: run.cluster), options: .atomic)
    }

    /// The cluster a run was submitted on; a run directory written before
    /// cluster.json existed reads the YAML file the store names.
    public static func read(_ run: RunDirectory, orFile path: String) throws -> ClusterSpec {
        guard let data = FileManager.default.contents(atPath: run.cluster) else { return try load(path: path) }
        do { return try JSONDecoder().decode(ClusterSpec.self, from: data) } catch {
            throw ManifestError(file: run.cluster, field: "", message: "not a cluster this herd reads: \(error)")
        }
    }
}
