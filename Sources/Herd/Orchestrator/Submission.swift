import Foundation

/// Everything checked before a job is stored or a process started: the
/// manifest, the cluster, that the launcher is installed, that the layout
/// fits the cluster's slots and memory, and that no live job writes the
/// same run directory. `record` is what the store will hold.
public struct Submission {
    public var record: JobRecord
    /// The job as resolved at submit (RUN/job.json once stored), on the layout it runs.
    public var resolved: ResolvedJob
    public var cluster: ClusterSpec
    public var report: PlanReport

    public var manifest: JobManifest { resolved.manifest }

    /// `cluster` is a path, or a name in clusters/ ("local" → clusters/local.yaml), taken from `base`.
    public static func resolveCluster(_ cluster: String, base: String) -> String {
        let path = cluster.hasSuffix(".yaml") || cluster.hasSuffix(".yml") || cluster.contains("/") ? cluster : "clusters/\(cluster).yaml"
        return YAMLFields.absolute(path, base: base)
    }

    /// Resolves the manifest at `path` (relative paths taken from `base`,
    /// by default the current directory) and checks it against the cluster.
    public static func prepare(manifest path: String, cluster clusterName: String, overrides: JobManifest.Overrides,
                               store: JobStore, base: String? = nil) throws -> Submission {
        let base = base ?? FileManager.default.currentDirectoryPath
        let resolved = try ResolvedJob.resolve(path: path, overrides: overrides, base: base)
        return try prepare(resolved, cluster: resolveCluster(clusterName, base: base), store: store, workdir: base)
    }

    /// Checks a resolved job against the cluster at `clusterPath`: the
    /// launcher is installed, the layout fits its slots and memory, and no
    /// live job (but `replacing`) writes the same run directory.
    public static func prepare(_ resolved: ResolvedJob, cluster clusterPath: String, store: JobStore, workdir: String,
                               replacing jobID: Int? = nil) throws -> Submission {
        let manifest = resolved.manifest
        let cluster = try ClusterSpec.load(path: clusterPath)
        try cluster.checkLauncherInstalled()
        let report = try PlanReport.make(manifest: manifest, model: resolved.model, cluster: cluster)
        if let problem = report.memoryProblem { throw JobStoreError(message: problem) }
        let runDir = manifest.output
        for other in try store.jobs() where !other.state.isFinal && other.runDir == runDir && other.id != jobID {
            throw JobStoreError(message: "job \(other.id) (\(other.state.rawValue)) is already writing \(runDir): cancel it (herd cancel \(other.id)) or give this job another --output")
        }
        let source = YAMLFields.absolute(resolved.source, base: workdir)
        var record = JobRecord(
            name: manifest.name, manifest: source, cluster: clusterPath, workdir: workdir, runDir: runDir,
            launcher: cluster.launcher.rawValue, data: manifest.parallelism.data, tensor: manifest.parallelism.tensor,
            totalSteps: manifest.steps, maxRestarts: manifest.restart.maxRestarts, stepsOverride: nil,
            corpusOverride: nil, lastCheckpointStep: CheckpointStore(runDirectory: runDir).latest())
        record.id = jobID ?? 0
        return Submission(record: record, resolved: resolved, cluster: cluster, report: report)
    }
}
