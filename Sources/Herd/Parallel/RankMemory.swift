import Foundation

/// The bytes one training rank holds, part by part, as Herd allocates them:
/// what `herd plan` prices and what a worker checks against the machine
/// before it allocates. Data rank 0 holds the most (it alone writes the
/// whole weights of an asynchronous checkpoint), so it is the rank priced.
public struct RankMemory: Sendable, Equatable {
    /// fp32 weights: the tensor shard, or under ZeRO-3 this rank's part of it
    /// plus two buffers of the largest segment (the one in use, the next);
    /// under bf16, two segments' rounded copies too.
    public var weights: Double
    /// fp32 gradients: one buffer per batch thread, and from ZeRO-1 on this
    /// rank's part of their sum; under ZeRO-2/3 only that part, plus the
    /// segment backward is writing.
    public var gradients: Double
    /// AdamW's two fp32 moments, divided among the data ranks from ZeRO-1 on.
    public var optimizer: Double
    /// What the forward keeps for backward, and the scratch, of every batch thread.
    public var activations: Double
    /// An asynchronous checkpoint's copy of what the rank writes.
    public var snapshot: Double
    /// Open MPI's temporary buffers for the data-parallel collectives: about
    /// two of the largest message (a bucket of the all-reduce; under ZeRO a
    /// segment's reduce-scatter), as measured by `herd bench --only memory`.
    public var communication: Double
    /// The process around the buffers (runtime, MPI, BLAS, tokenizer, data),
    /// measured on a CPU rank; nothing on a device, whose memory holds the
    /// buffers alone.
    public var process: Double

    public var total: Double { weights + gradients + optimizer + activations + snapshot + communication + process }

    /// "weights 1.20 + gradients …" in GB, the parts that are not zero.
    public var parts: String {
        [("weights", weights), ("gradients", gradients), ("AdamW", optimizer), ("activations", activations),
         ("checkpoint snapshot", snapshot), ("MPI buffers", communication), ("process", process)]
            .filter { $0.1 > 0 }.map { String(format: "%@ %.2f", $0.0, $0.1 / 1e9) }.joined(separator: " + ")
    }

    /// Resident memory of a rank beyond its buffers: 44–50 MB measured here
    /// (`herd bench --only memory`, the difference between the peak and the
    /// planned buffers at (1,1) and (1,2); 46 MB for a 35K-parameter model):
    /// the Swift runtime, Open MPI, OpenBLAS's buffers, the data.
    public static let processBytes = 48e6

    /// - `batchThreads`: the threads a micro-batch is split over (each with
    ///   its own gradients and activations); 1 on a device.
    /// - `device`: whether a rank is an accelerator (no process term).
    public static func training(config c: LlamaConfig, shard: TensorShard, data dp: Int, zero: Int, microBatch: Int,
                                seqLen: Int, checkpoint: ActivationCheckpoint, sequenceParallel: Bool = false,
                                precision: Precision = .fp32, batchThreads: Int,
                                asyncCheckpoint: Bool, device: Bool) -> RankMemory {
        let layout = ParameterLayout(config: c, shard: shard)
        let local = Double(layout.total), stage = dp > 1 ? zero : 0
        let parts = DataParts(layout: layout, ranks: dp, rank: 0)
        let part = Double(parts.owned.count), segment = Double(parts.largestSegment)
        let threads = Double(batchThreads)
        // The part and two gathered segments; under bf16 without that, two
        // rounded segments beside the master for each batch thread.
        let weights = stage >= 3 ? part + 2 * segment : local + (precision == .bf16 ? 2 * segment * Double(batchThreads) : 0)
        let gradients: Double
        switch stage {
        case 0: gradients = local * threads
        case 1: gradients = local * threads + part                    // and this rank's sum
        default: gradients = part + segment + min(segment, part)     // the part, a segment's, its landing
        }
        let optimizer = 2 * (stage >= 1 ? part : local)
        let acts = threads * Double(Activations.floatCount(config: c, shard: shard, batch: microBatch / batchThreads,
                                                           seqLen: seqLen, checkpoint: checkpoint, sequenceParallel: sequenceParallel,
                                                           precision: precision))
        // An asynchronous save's copy is host memory: not a device's.
        let written = stage >= 3 ? part : local
        let snapshot = asyncCheckpoint && !device ? written + optimizer : 0
        let message = stage >= 1 ? segment : min(local, Double(GradientSync.bucketFloats))
        let communication = dp > 1 && !device ? 2 * message : 0
        return RankMemory(weights: 4 * weights, gradients: 4 * gradients, optimizer: 4 * optimizer, activations: 4 * acts,
                          snapshot: 4 * snapshot, communication: 4 * communication, process: device ? 0 : processBytes)
    }
}
