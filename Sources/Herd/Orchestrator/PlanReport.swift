import Foundation

/// What `herd plan` tells before anything starts: the layout on the
/// cluster's nodes, the memory each rank needs (ZeRO-aware), FLOPs per token
/// and the time the job takes at the cluster's peak and a stated utilisation.
public struct PlanReport: Sendable {
    public var plan: Plan
    public var cluster: ClusterSpec
    /// What rank 0 holds (the rank with most: see `RankMemory`).
    public var memory: RankMemory
    public var flopsPerToken: Double
    public var totalTokens: Double
    public var secondsAtUtilization: Double
    public var slotHours: Double
    /// Set when a rank's memory exceeds its slot's: what to change.
    public var memoryProblem: String?
    /// A PPO job's models, phases and times (`memory` is its largest phase).
    public var ppo: PPOPlan?
    /// A prepare job's units and how they are dealt (it has no model to price).
    public var preparation: PreparationLayout?
    /// What the ranks keep for backward (the activations above assume it).
    public var activationCheckpoint: ActivationCheckpoint = .none
    public var sequenceParallel = false
    public var precision: Precision = .fp32

    public var totalBytesPerRank: Double { memory.total }

    /// The memory of one slot: a device's, or the node's share.
    public var slotBytes: Double { Self.slotBytes(cluster) }
    static func slotBytes(_ cluster: ClusterSpec) -> Double {
        let group = cluster.nodes[cluster.slotHosts[0].group]
        return (group.deviceMemoryGB ?? group.memoryGB / Double(group.slots)) * 1e9
    }

    /// The model FLOPs utilisation the time assumes: 6·N FLOPs per token
    /// (no attention, no recomputation) over the ranks' peak.
    public var modelFLOPsUtilization: Double {
        let peak = cluster.nodes[cluster.slotHosts[0].group].peakTFLOPs * 1e12
        return 6 * Double(plan.model.parameterCount) * totalTokens / (secondsAtUtilization * Double(plan.world) * peak)
    }

    /// Places the plan's ranks on the cluster and checks that they fit.
    /// `rewardModel` and `promptTokens`: a PPO job's reward models' shape
    /// and its prompts' length, when a pipeline's plan knows them (PPOPlan).
    public static func make(manifest m: JobManifest, model: LlamaConfig, cluster: ClusterSpec, rewardModel: LlamaConfig? = nil,
                            promptTokens: Int? = nil) throws -> PlanReport {
        let world = m.ranks, tp = m.parallelism.tensor
        let slots = cluster.slotHosts
        guard world <= slots.count else {
            let frozen = world > m.parallelism.world ? " + ppo.frozen_ranks \(world - m.parallelism.world)" : ""
            throw ManifestError(file: cluster.file, field: "nodes",
                                message: "the job needs \(world) ranks (parallelism.data \(m.parallelism.data) × tensor \(tp)\(frozen)); the cluster has \(slots.count) slots")
        }
        for (i, n) in cluster.nodes.enumerated() where n.slots % tp != 0 && world > 1 {
            throw ManifestError(file: cluster.file, field: "nodes[\(i)].slots",
                                message: "tensor-parallel groups stay inside a node: \(n.slots) slots do not divide into groups of \(tp)")
        }
        var plan = try Planner.plan(manifest: m, model: model, host: slots[0].host, cores: cluster.nodes[0].cores)
        for r in 0..<world {
            let g = cluster.nodes[slots[r].group]
            plan.ranks[r].host = slots[r].host
            plan.ranks[r].threads = max(1, g.cores / g.slots)
        }
        if let settings = m.preparation {
            return PlanReport(plan: plan, cluster: cluster, memory: RankMemory(weights: 0, gradients: 0, optimizer: 0, activations: 0, snapshot: 0, communication: 0, process: 0), flopsPerToken: 0, totalTokens: 0,
                              secondsAtUtilization: 0, slotHours: 0, memoryProblem: nil, ppo: nil,
                              preparation: try PreparationLayout.make(settings, ranks: world))
        }
        // On a device a rank is one accelerator; on a CPU node it splits its
        // micro-batch over its cores, as the worker will (not when it talks
        // inside forward and backward: tensor parallelism, ZeRO-2/3).
        let group = cluster.nodes[slots[0].group]
        let device = group.deviceMemoryGB != nil
        let talks = tp > 1 || (m.parallelism.zero >= 2 && m.parallelism.data > 1)
        let threads = device || talks ? 1 : BatchThreads.threadCount(sequences: m.batch.microBatch, threads: plan.ranks[0].threads,
                                                                      unit: model.scalarHead ? 2 : 1)
        var bytes = RankMemory.training(config: model, shard: plan.ranks[0].shard, data: m.parallelism.data, zero: m.parallelism.zero,
                                        microBatch: m.batch.microBatch, seqLen: m.data.seqLen, checkpoint: m.activationCheckpoint,
                                        sequenceParallel: m.parallelism.sequenceParallel, precision: m.precision, batchThreads: threads, asyncCheckpoint: m.checkpoint.interval > 0 && m.checkpoint.async,
                                        device: device)
        var flops = model.trainingFLOPsPerToken(seqLen: m.data.seqLen)
            + model.recomputeFLOPsPerToken(seqLen: m.data.seqLen, checkpoint: m.activationCheckpoint)
        var tokens = Double(m.steps) * Double(m.batch.sequences * m.data.seqLen)
        let peak = Double(world) * group.peakTFLOPs * 1e12
        var seconds = flops * tokens / (peak * cluster.utilization)
        let ppo = m.kind == .ppo
            ? try PPOPlan.make(manifest: m, model: model,
                               rank: .init(flops: group.peakTFLOPs * 1e12 * cluster.utilization,
                                           bandwidth: group.memoryBandwidthGBs.map { $0 * 1e9 * cluster.utilization },
                                           device: device, batchThreads: threads),
                               rewardModel: rewardModel, promptTokens: promptTokens)
            : nil
        if let ppo {
            bytes = ppo.fullestRank
            flops = ppo.flopsPerIteration / ppo.tokensPerIteration
            tokens = Double(ppo.iterations) * ppo.tokensPerIteration
            seconds = Double(ppo.iterations) * ppo.secondsPerIteration
        }
        let capacity = slotBytes(cluster)
        let need = bytes.total
        var problem: String?
        if need > capacity {
            problem = ManifestError(file: m.file, field: "parallelism",
                                message: String(format: "each rank needs %.1f GB (%@ for a micro-batch of %d) and a slot of %@ has %.1f GB: %@",
                                                need / 1e9, bytes.parts, m.batch.microBatch, cluster.name, capacity / 1e9, remedies(m))).description
        }
        var report = PlanReport(plan: plan, cluster: cluster, memory: bytes, flopsPerToken: flops, totalTokens: tokens,
                                secondsAtUtilization: seconds, slotHours: seconds * Double(world) / 3600, memoryProblem: problem, ppo: ppo)
        report.activationCheckpoint = m.activationCheckpoint
        report.sequenceParallel = m.parallelism.sequenceParallel
        report.precision = m.precision
        return report
    }

    /// What could make a rank fit, of what this job does not do yet.
    static func remedies(_ m: JobManifest) -> String {
        var r = ["raise parallelism.tensor"]
        if m.parallelism.tensor > 1 && !m.parallelism.sequenceParallel { r.append("set parallelism.sequence_parallel") }
        if m.parallelism.data > 1 && m.parallelism.zero < 3 { r.append("raise parallelism.zero (\(m.parallelism.zero + 1)\(m.parallelism.zero < 2 ? " or more" : ""))") }
        switch m.activationCheckpoint {
        case .none: r.append("set activation_checkpoint (selective or full)")
        case .selective: r.append("set activation_checkpoint: full")
        case .full: break
        }
        return r.joined(separator: ", ") + (r.count > 1 ? "," : "") + " or lower batch.micro_batch"
    }

    public var text: String {
        if let preparation { return preparation.text(job: plan.job, cluster: cluster, ranks: plan.ranks) }
        let p = plan, m = p.model
        var lines: [String] = []
        lines.append("\(p.job) on \(cluster.name) (\(cluster.launcher.rawValue)): \(p.world) ranks = data \(p.data) × tensor \(p.tensor)\(sequenceParallel && p.tensor > 1 ? " (sequence parallel)" : "")\(ParallelContext.stageLabel(p.zero))")
        lines.append("model: \(m.parameterCount) parameters (dim \(m.dim), \(m.layers) layers, \(m.heads) heads, \(m.kvHeads) KV heads, FFN \(m.ffnDim), vocab \(m.vocabSize))")
        lines.append(String(format: "memory per rank: %.2f GB = %@ (%@; activation_checkpoint: %@)",
                            totalBytesPerRank / 1e9, memory.parts, precision == .bf16 ? "bf16 products and activations, fp32 master, gradients and AdamW" : "fp32",
                            activationCheckpoint.rawValue))
        if let ppo { lines.append(ppo.text) }
        lines.append(String(format: "compute: %.3g FLOPs per token, %.3g tokens, %.3g FLOPs in all", flopsPerToken, totalTokens, flopsPerToken * totalTokens))
        // PPO's time is its phases' (decoding bound by memory bandwidth): 6·N per token says little of it.
        lines.append(String(format: "time at %.0f%% of the cluster's peak: %@ (%.0f slot-hours; %@)", cluster.utilization * 100,
                            formatDuration(secondsAtUtilization), slotHours,
                            ppo.map { String(format: "%d iterations of %.1f s", $0.iterations, $0.secondsPerIteration) }
                                ?? String(format: "model FLOPs utilisation %.1f%%", 100 * modelFLOPsUtilization)))
        let show = p.ranks.count <= 16 ? p.ranks : Array(p.ranks.prefix(8)) + Array(p.ranks.suffix(4))
        for r in show {
            let s = r.shard
            lines.append("  rank \(r.rank) on \(r.host): data \(r.dataRank), tensor \(r.tensorRank); sequences [\(r.firstSequence), \(r.firstSequence + r.sequenceCount)) of each batch; heads [\(s.headStart), \(s.headStart + s.heads)), KV heads [\(s.kvHeadStart), \(s.kvHeadStart + s.kvHeads)), FFN [\(s.ffnStart), \(s.ffnStart + s.ffn)), vocab [\(s.vocabStart), \(s.vocabStart + s.vocab)); \(r.threads) threads")
            if r.rank == 7 && p.ranks.count > 16 { lines.append("  ...") }
        }
        return lines.joined(separator: "\n")
    }
}
