/// One rank's view of the process grid: the world, its data-parallel group
/// (the ranks with the same tensor rank) and its tensor-parallel group (the
/// ranks with the same data rank), built from the plan's coordinates.
public final class ParallelContext {
    public let world: Communicator
    public let data: Communicator
    public let tensor: Communicator
    public let rank: RankPlan
    public let zero1: Bool

    public init(world: Communicator, rank: RankPlan, zero1: Bool) {
        self.world = world
        self.rank = rank
        self.zero1 = zero1
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
                        zero1: false)
    }

    public var isLeader: Bool { world.rank == 0 }
}
