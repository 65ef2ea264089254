import Foundation

/// The contract between the coordinator and its workers, written as
/// `plan.json` in the run directory: for every rank its host, its (data,
/// tensor) coordinates, its slice of each global batch, its piece of every
/// weight matrix and its thread counts. Workers read it; they compute
/// nothing about the layout themselves.
public struct Plan: Codable, Sendable, Equatable {
    public var job: String
    /// The run directory: the workers read the resolved job (RUN/job.json)
    /// there and put it on this plan's layout (`data` × `tensor`).
    public var output: String
    public var model: LlamaConfig
    public var world: Int
    public var data: Int
    public var tensor: Int
    /// The ZeRO stage.
    public var zero: Int
    /// Sequences of the global batch each data-parallel rank computes per step.
    public var sequencesPerRank: Int
    public var saveWeights: Bool
    /// Continue from the run directory's checkpoints (and which step, if named).
    public var resume: Bool = true
    public var resumeStep: Int?
    public var ranks: [RankPlan]
    /// The Slurm job whose allocation the ranks' hosts were read back from (nil under mpirun).
    public var allocation: String?

    public static let fileName = "plan.json"

    public func write(to dir: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(self).write(to: URL(fileURLWithPath: RunDirectory(dir).plan), options: .atomic)
    }

    public static func read(_ path: String) throws -> Plan {
        try JSONDecoder().decode(Plan.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

public struct RankPlan: Codable, Sendable, Equatable {
    public var rank: Int
    public var host: String
    public var dataRank: Int
    public var tensorRank: Int
    /// Global-batch sequences [first, first + count) of every step.
    public var firstSequence: Int
    public var sequenceCount: Int
    public var shard: TensorShard
    /// Cores ÷ ranks on this node: OpenBLAS threads (or batch threads).
    public var threads: Int
    /// A rank of a PPO job's frozen-model group (`ppo.placement: separate`):
    /// it trains nothing, and scores what the trainers send it. Its
    /// tensorRank is its place in that group.
    public var frozen: Bool? = nil

    public var holdsFrozenModels: Bool { frozen ?? false }
}

/// Lays a job out on processes: data-parallel × tensor-parallel, with the
/// tensor-parallel ranks of a group adjacent (rank = dataRank · tp + tensorRank)
/// so that they share a node.
public enum Planner {
    public static func plan(manifest m: JobManifest, model: LlamaConfig, host: String, cores: Int,
                            saveWeights: Bool = false) throws -> Plan {
        let dp = m.parallelism.data, tp = m.parallelism.tensor, world = dp * tp, frozen = m.ppo?.frozenGroup ?? 0
        guard m.batch.sequences % dp == 0 else {
            throw ManifestError(file: m.file, field: "batch.sequences",
                                message: "the global batch (\(m.batch.sequences) sequences) must divide among parallelism.data = \(dp) ranks")
        }
        let perRank = m.batch.sequences / dp
        if m.parallelism.sequenceParallel && tp > 1 && (m.batch.microBatch * m.data.seqLen) % tp != 0 {
            throw ManifestError(file: m.file, field: "parallelism.sequence_parallel",
                                message: "splits a micro-batch's \(m.batch.microBatch) × \(m.data.seqLen) rows among \(tp) tensor ranks: they must divide evenly (change batch.micro_batch or data.seq_len)")
        }
        var ranks: [RankPlan] = []
        for r in 0..<world {
            let d = r / tp, t = r % tp
            let shard: TensorShard
            do throws(ConfigError) { shard = try TensorShard.make(model, rank: t, size: tp) } catch {
                throw ManifestError(file: m.file, field: "model.\(error.field)", message: error.message + " (parallelism.tensor = \(tp))")
            }
            ranks.append(RankPlan(rank: r, host: host, dataRank: d, tensorRank: t,
                                  firstSequence: d * perRank, sequenceCount: perRank,
                                  shard: shard, threads: max(1, cores / (world + frozen))))
        }
        // A PPO job's frozen models on ranks of their own, after the trainers: one tensor group.
        for i in 0..<frozen {
            let shard: TensorShard
            do throws(ConfigError) { shard = try TensorShard.make(model, rank: i, size: frozen) } catch {
                throw ManifestError(file: m.file, field: "ppo.frozen_ranks", message: "splits the reference model by tensor parallelism: \(error.field) \(error.message)")
            }
            ranks.append(RankPlan(rank: world + i, host: host, dataRank: dp, tensorRank: i, firstSequence: 0, sequenceCount: 0,
                                  shard: shard, threads: max(1, cores / (world + frozen)), frozen: true))
        }
        return Plan(job: m.name, output: m.output, model: model, world: world + frozen, data: dp, tensor: tp,
                    zero: m.parallelism.zero, sequencesPerRank: perRank, saveWeights: saveWeights, ranks: ranks)
    }
}
