import Foundation

/// `herd plan --suggest`: the layouts of a job's ranks that fit the
/// cluster, best first. The job's number of ranks (data × tensor) and its
/// micro-batch stay (a PPO job's is its mini-batch's share of a data rank); what varies is the tensor degree (a divisor of the
/// ranks that fits a node and the model's heads), sequence parallelism
/// (with a tensor degree above 1), the ZeRO stage and the recomputation
/// mode. Best is a layout that leaves a tenth of the slot's memory free
/// (what the plan does not price: a device's runtime and allocator, this
/// machine's other processes), then the fewest slot-hours (recomputation
/// costs FLOPs; communication is not priced), then the least memory per rank.
public enum LayoutSearch {
    public struct Candidate: Sendable {
        public var tensor: Int, sequenceParallel: Bool, zero: Int, checkpoint: ActivationCheckpoint
        public var report: PlanReport
        public var fits: Bool { report.memoryProblem == nil }
        /// Within 90% of the slot's memory.
        public var roomy: Bool { fits && report.totalBytesPerRank <= 0.9 * report.slotBytes }
        public var line: String {
            String(format: "data %d × tensor %d%@, zero %d, activation_checkpoint: %@ — %.1f GB per rank, %.3g slot-hours",
                   report.plan.data, tensor, sequenceParallel ? " (sequence parallel)" : "", zero, checkpoint.rawValue,
                   report.totalBytesPerRank / 1e9, report.slotHours)
        }
    }

    /// Every layout that can be planned, best first (those that fit before those that do not).
    public static func candidates(manifest m: JobManifest, model: LlamaConfig, cluster: ClusterSpec) throws -> [Candidate] {
        guard m.preparation == nil else {
            throw ManifestError(file: m.file, field: "kind", message: "--suggest lays out training jobs; a prepare job's ranks each tokenize their own units")
        }
        let world = m.parallelism.world
        var found: [Candidate] = []
        for tensor in 1...world where world % tensor == 0 && model.heads % tensor == 0 {
            let data = world / tensor
            guard m.batch.sequences % data == 0, (m.ppo?.miniBatch ?? data) % data == 0 else { continue }
            for sp in tensor > 1 ? [false, true] : [false] {
                for zero in 0...3 where zero == 0 || data > 1 {
                    for checkpoint in ActivationCheckpoint.allCases {
                        var layout = m
                        layout.parallelism = .init(data: data, tensor: tensor, zero: zero)
                        layout.parallelism.sequenceParallel = sp
                        layout.activationCheckpoint = checkpoint
                        if let p = m.ppo {
                            layout.batch.microBatch = p.miniBatch / data
                        } else if !m.batch.microBatchGiven {
                            layout.batch.microBatch = m.batch.sequences / data
                        }
                        // PPO pads its rollouts' length to a multiple of the tensor degree.
                        guard (m.batch.sequences / data) % layout.batch.microBatch == 0,
                              !sp || m.ppo != nil || (layout.batch.microBatch * m.data.seqLen) % tensor == 0,
                              let report = try? PlanReport.make(manifest: layout, model: model, cluster: cluster) else { continue }
                        found.append(Candidate(tensor: tensor, sequenceParallel: sp, zero: zero, checkpoint: checkpoint, report: report))
                    }
                }
            }
        }
        return found.sorted { a, b in
            if a.fits != b.fits { return a.fits }
            if a.roomy != b.roomy { return a.roomy }
            if abs(a.report.slotHours - b.report.slotHours) > 1e-9 * max(a.report.slotHours, 1) { return a.report.slotHours < b.report.slotHours }
            return a.report.totalBytesPerRank < b.report.totalBytesPerRank
        }
    }
}
