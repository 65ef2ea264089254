import Foundation

/// `herd plan`'s bytes per rank against the peak resident memory every rank
/// of the same job measures: a 106M-parameter Llama (dim 768, 15 layers,
/// byte vocabulary) trained for a step in eleven layouts that cross the
/// recomputation mode, the ZeRO stage, the tensor degree, sequence
/// parallelism and the precision.
public enum MemoryAgreement {
    public struct Case: Sendable, CustomStringConvertible {
        public var data: Int, tensor: Int, zero: Int, checkpoint: ActivationCheckpoint, sequenceParallel = false,
                   precision = Precision.fp32
        public var description: String {
            "(\(data),\(tensor))\(sequenceParallel ? " SP" : "") zero \(zero), \(checkpoint.rawValue)\(precision == .bf16 ? ", bf16" : "")"
        }
    }

    public static let shape = LlamaConfig(dim: 768, layers: 15, heads: 12, kvHeads: 12, ffnDim: 2048, vocabSize: 256, maxSeqLen: 64)

    public static let cases: [Case] = [
        Case(data: 1, tensor: 1, zero: 0, checkpoint: .none),
        Case(data: 2, tensor: 1, zero: 0, checkpoint: .none),
        Case(data: 2, tensor: 1, zero: 1, checkpoint: .selective),
        Case(data: 2, tensor: 1, zero: 2, checkpoint: .none),
        Case(data: 2, tensor: 1, zero: 3, checkpoint: .none),
        Case(data: 2, tensor: 1, zero: 3, checkpoint: .full),
        Case(data: 1, tensor: 2, zero: 0, checkpoint: .full),
        Case(data: 1, tensor: 2, zero: 0, checkpoint: .none, sequenceParallel: true),
        Case(data: 2, tensor: 2, zero: 3, checkpoint: .selective, sequenceParallel: true),
        Case(data: 1, tensor: 1, zero: 0, checkpoint: .none, precision: .bf16),
        Case(data: 2, tensor: 2, zero: 3, checkpoint: .none, sequenceParallel: true, precision: .bf16),
    ]

    public struct Row: Sendable {
        public var planned: RankMemory
        /// The largest and smallest rank's peak resident bytes.
        public var measuredMax: Double, measuredMin: Double
        /// The step's tokens/s (one step: indicative only).
        public var tokensPerSecond: Double
        /// The worst of the two, as |planned − measured| / measured.
        public var error: Double {
            max(abs(planned.total - measuredMax) / measuredMax, abs(planned.total - measuredMin) / measuredMin)
        }
    }

    /// Plans the case on this machine (its `cores` shared by the ranks) and
    /// runs it: one step of 4 sequences per data rank, micro-batches of 2.
    public static func measure(_ c: Case, cores: Int, corpus: String, workDir: String,
                               herd: String = "/proc/self/exe") throws -> Row {
        let job = try LayoutThroughput.writeJob(preset: "", layout: .init(data: c.data, tensor: c.tensor, threads: cores),
                                                sequences: 4 * c.data, steps: 1, corpus: corpus, workDir: workDir,
                                                checkpoint: c.checkpoint, zero: c.zero, sequenceParallel: c.sequenceParallel,
                                                precision: c.precision, shape: shape, microBatch: 2)
        let m = try JobManifest.load(path: job)
        var model = m.model.config
        model.vocabSize = ByteTokenizer().vocabSize
        let plan = try PlanReport.make(manifest: m, model: model, cluster: .thisMachine(slots: c.data * c.tensor, cores: cores))
        let end = try LayoutThroughput.run(job: job, herd: herd)
        guard let high = end.peakResidentBytesMax, let low = end.peakResidentBytesMin else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: job])
        }
        return Row(planned: plan.memory, measuredMax: Double(high), measuredMin: Double(low), tokensPerSecond: end.tokensPerSecond ?? .nan)
    }
}
