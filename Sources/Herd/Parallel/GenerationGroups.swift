import Foundation

/// The ranks of a generation stage (rejection sampling, `herd generate`):
/// consecutive groups of `tensor` ranks each hold one copy of the models,
/// split among them by tensor parallelism, and each group takes its share
/// of the prompts. Every rank of a group runs the same generation in step;
/// its first rank writes what the group produced.
public struct GenerationGroups {
    public let world: Communicator
    /// This rank's tensor group (the ranks holding one copy of the models).
    public let tensor: Communicator
    /// Which group this rank is in, of how many.
    public let dataRank: Int, dataSize: Int

    /// Throws when `tensor` does not divide the ranks.
    public init(world: Communicator, tensor: Int) throws(ConfigError) {
        guard tensor >= 1, world.size % tensor == 0 else {
            throw ConfigError(field: "tensor", message: "must divide the \(world.size) ranks, got \(tensor)")
        }
        self.world = world
        self.tensor = tensor == 1 ? SingleProcessCommunicator() : world.split(color: world.rank / tensor, key: world.rank % tensor)
        dataRank = world.rank / tensor
        dataSize = world.size / tensor
    }

    /// One process: one group of one rank.
    public static var single: GenerationGroups { try! GenerationGroups(world: SingleProcessCommunicator(), tensor: 1) }

    /// Whether this rank writes its group's results.
    public var writes: Bool { tensor.rank == 0 }
}
