import Foundation

/// Everything checked before a job is stored or a process started: the
/// manifest, the cluster, that the launcher is installed, that the layout
/// fits the cluster's slots and memory, and that no live job writes the
/// same run directory. `record` is what the store will hold.
public struct Submission {
    public var record: JobRecord
    public var manifest: JobManifest
    public var cluster: ClusterSpec
    public var report: PlanReport

    /// `cluster` is a path, or a name in clusters/ ("local" → clusters/local.yaml).
    public static func resolveCluster(_ cluster: String) -> String {
        if cluster.hasSuffix(".yaml") || cluster.hasSuffix(".yml") || cluster.contains("/") { return cluster }
        return "clusters/\(cluster).yaml"
    }

    public static func prepare(manifest path: String, cluster clusterName: String, overrides: JobManifest.Overrides,
                               store: JobStore, replacing jobID: Int? = nil) throws -> Submission {
        let manifest = try JobManifest.load(path: path, overrides: overrides)
        let clusterPath = resolveCluster(clusterName)
        let cluster = try ClusterSpec.load(path: clusterPath)
        try cluster.checkLauncherInstalled()
        let model = manifest.model.config.vocabSize > 0 && manifest.model.config.maxSeqLen > 0
            ? manifest.model.config : try TrainingData.modelShape(manifest: manifest)
        let report = try PlanReport.make(manifest: manifest, model: model, cluster: cluster)
        if let problem = report.memoryProblem { throw JobStoreError(message: problem) }

        let cwd = FileManager.default.currentDirectoryPath
        func absolute(_ p: String) -> String { URL(fileURLWithPath: p, relativeTo: URL(fileURLWithPath: cwd + "/")).standardizedFileURL.path }
        let runDir = absolute(manifest.output)
        for other in try store.jobs() where !other.state.isFinal && other.runDir == runDir && other.id != jobID {
            throw JobStoreError(message: "job \(other.id) (\(other.state.rawValue)) is already writing \(runDir): cancel it (herd cancel \(other.id)) or give this job another --output")
        }
        var record = JobRecord(
            name: manifest.name, manifest: absolute(path), cluster: absolute(clusterPath), workdir: cwd, runDir: runDir,
            launcher: cluster.launcher.rawValue, data: manifest.parallelism.data, tensor: manifest.parallelism.tensor,
            totalSteps: manifest.steps, maxRestarts: manifest.restart.maxRestarts, stepsOverride: overrides.steps,
            corpusOverride: overrides.corpus.map(absolute), lastCheckpointStep: CheckpointStore(runDirectory: runDir).latest())
        record.id = jobID ?? 0
        return Submission(record: record, manifest: manifest, cluster: cluster, report: report)
    }

    /// The overrides a stored job is re-read with (the coordinator, a resume).
    public static func overrides(_ job: JobRecord) -> JobManifest.Overrides {
        .init(corpus: job.corpusOverride, steps: job.stepsOverride, output: job.runDir, data: job.data, tensor: job.tensor)
    }
}
