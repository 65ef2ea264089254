import Foundation

/// Every path in a run directory, named once. Writers and readers (the
/// trainer, the coordinator, the launchers, `herd status`, `herd serve`,
/// the pipeline) take their paths from here and never spell a file name.
///
/// ```
/// RUN/job.json             the resolved job (written once, at submit or run)
/// RUN/manifest.yaml        the manifest as submitted (for people; nothing reads it back)
/// RUN/cluster.json         the cluster the job was submitted (or resumed) on, resolved
/// RUN/plan.json            the layout of the current attempt
/// RUN/attempt.json         the current attempt's launcher and id (a new coordinator adopts it)
/// RUN/events.jsonl         one RunEvent a line
/// RUN/model.json           the resolved model shape
/// RUN/tokenizer.json       the tokenizer (a char vocabulary comes from the corpus)
/// RUN/heartbeats/          one file a rank (written when the coordinator does not hear the rank's datagrams)
/// RUN/heartbeat-endpoint.json  where ranks send heartbeats: the coordinator's UDP port
/// RUN/logs/attempt-K/      each attempt's rank and launcher logs
/// RUN/checkpoints/         step-NNNNNNNN/ and LATEST
/// RUN/slurm/               batch scripts and the current Slurm job
/// RUN/coordinator.log      the coordinator's lines
/// RUN/node-probe.log       what the elastic layout's probes saw
/// RUN/weights/             raw fp32 weights (herd run --save-weights)
/// ```
public struct RunDirectory: Sendable, Hashable {
    public let root: String

    public init(_ root: String) { self.root = root }

    public func file(_ name: String) -> String { (root as NSString).appendingPathComponent(name) }

    public var resolvedJob: String { file("job.json") }
    public var manifest: String { file("manifest.yaml") }
    public var cluster: String { file("cluster.json") }
    public var plan: String { file("plan.json") }
    public var attempt: String { file("attempt.json") }
    public var events: String { file("events.jsonl") }
    public var model: String { file("model.json") }
    public var tokenizer: String { file("tokenizer.json") }
    public var heartbeats: String { file("heartbeats") }
    public var heartbeatEndpoint: String { file("heartbeat-endpoint.json") }
    public var logs: String { file("logs") }
    public var checkpoints: String { file("checkpoints") }
    public var slurm: String { file("slurm") }
    public var coordinatorLog: String { file("coordinator.log") }
    public var nodeProbeLog: String { file("node-probe.log") }
    public var weights: String { file("weights") }
    public var hostfile: String { file("hostfile") }
    /// A PPO job's value model: a run directory of its own inside the policy's.
    public var valueModel: RunDirectory { RunDirectory(file("value")) }

    public func attemptLogs(_ attempt: Int) -> String { file("logs/attempt-\(attempt)") }

    public func create() throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    /// The events written so far (a missing file is no events).
    public func readEvents() throws -> [RunEvent] { try RunEvent.readAll(path: events) }
}
