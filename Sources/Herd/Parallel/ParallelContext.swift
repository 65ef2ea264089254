/// One rank's view of the process grid: the world, its data-parallel group
/// (the ranks with the same tensor rank) and its tensor-parallel group (the
/// ranks with the same data rank), built from the plan's coordinates.
public final class ParallelContext {
    public let world: Communicator
    public let data: Communicator
    public let tensor: Communicator
    public let rank: RankPlan
    /// The ZeRO stage (`parallelism.zero`).
    public let zero: Int

    public init(world: Communicator, rank: RankPlan, zero: Int) {
        self.world = world
        self.rank = rank
        self.zero = zero
        tensor = world.split(color: rank.dataRank, key: rank.tensorRank)
        data = world.split(color: rank.tensorRank, key: rank.dataRank)
        precondition(tensor.rank == rank.tensorRank && data.rank == rank.dataRank,
                     "the MPI groups do not match the plan's coordinates")
    }

    /// The whole job in this process.
    public static func single(model: LlamaConfig, sequences: Int, threads: Int) -> ParallelContext {
        ParallelContext(world: SingleProcessCommunicator(),
                        rank: RankPlan(rank: 0, host: "localhost", dataRank: 0, tensorRank: 0,
                                       firstSequence: 0, sequenceCount: sequences,
                                       shard: .whole(model), threads: threads),
                        zero: 0)
    }

    /// Whether each data rank keeps only its part of the AdamW state.
    public var shardsOptimizer: Bool { zero >= 1 && data.size > 1 }
    /// Whether each data rank keeps only its part of the gradients.
    public var shardsGradients: Bool { zero >= 2 && data.size > 1 }
    /// Whether each data rank keeps only its part of the weights between uses.
    public var shardsParameters: Bool { zero >= 3 && data.size > 1 }

    /// ", ZeRO-N" after a layout, or nothing at stage 0.
    public static func stageLabel(_ zero: Int) -> String { zero > 0 ? ", ZeRO-\(zero)" : "" }

    public var isLeader: Bool { world.rank == 0 }
}
