/// What a checkpoint needs to know of the run it belongs to.
public protocol RunIdentity: Sendable {
    /// The run directory (checkpoints go in its `checkpoints/`).
    var output: String { get }
    var name: String { get }
    var seed: UInt64 { get }
}

extension JobManifest: RunIdentity {}

/// A run that is not a training job (an import from Hugging Face).
public struct StandaloneRun: RunIdentity {
    public var output: String
    public var name: String
    public var seed: UInt64
    public init(output: String, name: String, seed: UInt64 = 0) { self.output = output; self.name = name; self.seed = seed }
}
