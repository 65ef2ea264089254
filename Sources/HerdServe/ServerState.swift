import Foundation
import Herd

/// What every handler shares: the job store, the caches of job facts and
/// event summaries, and the pipelines the server was started with.
final class ServerState: @unchecked Sendable {
    let configuration: ServeConfiguration
    let store: JobStore
    let facts = JobFactsCache()
    let events = RunEventIndex()
    let cache = ResponseCache()
    /// Open connections, pauses at --max-connections, deadlines passed (for /metrics).
    let connections = ConnectionStats()
    /// Pipeline name → its graph (manifests are read once, at start).
    let pipelines: [String: PipelineGraph]

    init(configuration: ServeConfiguration) throws {
        self.configuration = configuration
        store = try JobStore(home: configuration.storeHome)
        var graphs: [String: PipelineGraph] = [:]
        for path in configuration.pipelines {
            let m = try PipelineManifest.load(path: path, checkFiles: false)
            graphs[m.name] = PipelineGraph(manifest: m)
        }
        pipelines = graphs
    }

    func jobs() throws -> [JobRecord] {
        try store.jobs().map { JobOperations.reconcile(store, $0) }
    }

    /// The ranks of a job from its heartbeat files and the rows its
    /// coordinator writes; a silent rank on another node is asked about
    /// through the cluster's agent (answers are cached with the response).
    func workers(_ job: JobRecord) -> [WorkerHealth] {
        let cluster = try? ClusterSpec.read(RunDirectory(job.runDir), orFile: job.cluster)
        return WorkerHealth.assess(run: job.runDir, world: job.world, heartbeatSeconds: facts.facts(job).heartbeatSeconds,
                                   jobEnded: job.state.isFinal, stored: (try? store.workers(job.id)) ?? [],
                                   agent: job.state.isFinal ? nil : cluster.map { RemoteAgent(cluster: $0) })
    }
}
