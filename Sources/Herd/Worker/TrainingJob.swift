import Foundation

/// A resolved job's training on one rank: the trainer its kind needs
/// (PPOTrainer for ppo, Trainer for the rest, on the dataset TrainingData
/// picks), the loop, and the weights after it. The one path `herd run`
/// (the whole job in one process) and every MPI worker take.
public struct TrainingJob {
    public let manifest: JobManifest
    public let task: any TrainingTask

    /// The trainer on `context` (nil: the whole job in this process). When
    /// `planned` is given, the model the job resolves to on this rank must
    /// be that shape (a worker checks its data against the plan). `jobWorld`:
    /// every rank of the job, when a PPO job's frozen models have ranks of
    /// their own beyond the context's.
    public init(manifest m: JobManifest, context: ParallelContext? = nil, jobWorld: Communicator? = nil, planned: LlamaConfig? = nil,
                heartbeat: Heartbeat? = nil) throws {
        manifest = m
        let threads = m.threads ?? ProcessInfo.processInfo.activeProcessorCount
        func check(_ model: LlamaConfig) throws {
            if let planned, model != planned { throw TrainingJobError.modelDiffersFromPlan(job: m.name) }
        }
        if m.kind == .prepare { throw TrainingJobError.notTraining(job: m.name) }
        if m.kind == .ppo {
            try check(m.model.config)
            let context = context ?? .single(model: m.model.config, sequences: m.batch.sequences, threads: threads)
            var link: FrozenGroupLink?
            if m.ppo!.frozenGroup > 0 {
                guard let jobWorld, jobWorld.size == m.ranks else { throw TrainingJobError.frozenRanksMissing(job: m.name, ranks: m.ranks) }
                link = FrozenGroupLink(world: jobWorld, firstFrozen: m.parallelism.world, sends: context.tensor.rank == 0)
            }
            task = try PPOTrainer(manifest: m, context: context, link: link)
        } else {
            let data = try TrainingData(manifest: m)
            try check(data.model)
            task = try Trainer(manifest: m, data: data,
                               context: context ?? .single(model: data.model, sequences: m.batch.sequences, threads: threads))
        }
        task.heartbeat = heartbeat
    }

    /// Trains to the manifest's step count (resuming as asked), then writes
    /// each rank's weights when asked to.
    public func run(resume: Bool = true, resumeStep: Int? = nil, saveWeights: Bool = false,
                    output: (String) -> Void = { print($0) }) throws -> TrainingSummary {
        let ppo = task as? PPOTrainer
        let summary: TrainingSummary
        do { summary = try TrainingLoop(task, resumeStep: resumeStep).run(resume: resume || resumeStep != nil, output: output) } catch {
            if case TrainingError.stopped = error { try ppo?.releaseFrozenGroup(stopped: true) }
            throw error
        }
        try ppo?.releaseFrozenGroup(stopped: false)
        if saveWeights { try task.saveWeights() }
        return summary
    }

    /// A rank of a PPO job's frozen-model group (`ppo.placement: separate`):
    /// scores what the trainers send until they release it; returns whether
    /// they stopped on request. `group`: the frozen group's ranks;
    /// `threads`: the cores this rank has.
    public static func serveFrozenModels(manifest m: JobManifest, world: Communicator, group: Communicator, threads: Int, heartbeat: Heartbeat?,
                                         log: (String) -> Void) throws -> Bool {
        Matmul.threads = threads
        return try FrozenGroupLink.serve(manifest: m, world: world, group: group, firstFrozen: m.parallelism.world, heartbeat: heartbeat, log: log)
    }

    /// The line the job's first rank prints at the end.
    public func doneLine(_ s: TrainingSummary) -> String { s.doneLine(kind: manifest.kind, run: manifest.output) }
}

public enum TrainingJobError: Error, CustomStringConvertible {
    case modelDiffersFromPlan(job: String)
    case notTraining(job: String)
    case frozenRanksMissing(job: String, ranks: Int)
    public var description: String {
        switch self {
        case let .frozenRanksMissing(job, ranks):
            return "\(job): ppo.placement: separate puts the frozen models on ranks of their own: the job runs as \(ranks) MPI ranks (herd run starts them), not in one process"
        case let .notTraining(job):
            return "\(job) is a prepare job: it trains nothing (its ranks run PreparationRank)"
        case let .modelDiffersFromPlan(job):
            return "\(job): the model resolved from the job differs from the plan's (did its data or init change since it was planned?)"
        }
    }
}
