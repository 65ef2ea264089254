import Foundation

/// A PPO job priced for `herd plan`, as its ranks run it. The policy and
/// the value model train like any job on the job's layout (data × tensor,
/// ZeRO stage, sequence parallelism, precision, recomputation) with a
/// micro-batch of ppo.mini_batch / data; the frozen models — the reference
/// (the policy's shape) and both reward models — sit on the same ranks with
/// the same tensor shard and, under ZeRO-3, their weights divided among the
/// data ranks like the policy's (forward only: no gradients, no AdamW).
/// An iteration has three phases, and a rank's peak is the largest of them
/// on top of what persists, not their sum:
///
/// - rollout: each tensor group samples its rollouts in generation batches
///   with a KV cache; under ZeRO-3 the policy's tensor shard is gathered
///   whole once before and freed after (the paper's consolidation);
/// - scoring: forwards of the policy, the reference, the value model and
///   both reward models over each mini-batch share;
/// - update: a gradient step of the policy and of the value model per
///   mini-batch, both models' activations kept.
///
/// Time: decoding is bound by memory bandwidth (each step reads the rank's
/// weight shard and the KV cache once), prefill, scoring and the update by
/// compute — each at the cluster's utilization. Communication is not priced.
public struct PPOPlan: Sendable {
    /// The policy and the value model as trained (weights, gradients, AdamW,
    /// the update's activations), by `RankMemory.training`.
    public var policy: RankMemory, value: RankMemory
    /// The frozen models' weights on a trainer (the reference; both reward
    /// models) — 0 when they have ranks of their own.
    public var reference: Double, rewardModels: Double
    /// `ppo.placement: separate`: the frozen group's ranks and what one
    /// holds (the three models split over them, a block's forward).
    public var frozenGroup: (ranks: Int, memory: RankMemory)?
    /// The rollout phase's own bytes: the policy's tensor shard gathered
    /// whole (ZeRO-3 only) and a generation batch's KV cache.
    public var consolidated: Double, kvCache: Double
    /// The scoring phase's own bytes: the largest forward's activations.
    public var scoringActivations: Double
    /// Sequences a generation batch holds on a data rank.
    public var generationSequences: Int
    public var rolloutSeconds: Double, scoringSeconds: Double, updateSeconds: Double
    /// Whether decoding was priced at the device's memory bandwidth (else as compute: the cluster gives none).
    public var bandwidthBound: Bool
    /// What a decode step reads on a rank: the weight shard and the mean KV cache.
    public var decodeBytes: Double
    /// The job's PPO iterations (its steps).
    public var iterations: Int
    /// FLOPs of an iteration on all ranks, and its tokens (rollouts × (prompt + answer)).
    public var flopsPerIteration: Double, tokensPerIteration: Double
    /// What ZeRO-3 gathers and reduce-scatters per rank an iteration (not priced).
    public var zeroTraffic: Double

    /// The generation batch rollouts are sampled in (PPOTrainer.sample).
    public static let generationBatch = 32

    public enum Phase: String, Sendable, CaseIterable { case rollout, scoring, update }

    /// One rank of the cluster: its FLOP/s and memory bandwidth (bytes/s),
    /// both already at the cluster's utilization.
    public struct Rank: Sendable {
        public var flops: Double, bandwidth: Double?
        public var device: Bool, batchThreads: Int
        public init(flops: Double, bandwidth: Double?, device: Bool, batchThreads: Int) {
            self.flops = flops; self.bandwidth = bandwidth; self.device = device; self.batchThreads = batchThreads
        }
    }

    /// - `rewardModel`: the reward models' shape when their checkpoints are
    ///   not on this machine (a pipeline's plan); else the policy's is assumed.
    /// - `promptTokens`: a prompt's length as priced (a pipeline's
    ///   plan.prompt_tokens); else as long as max_new_tokens.
    public static func make(manifest m: JobManifest, model: LlamaConfig, rank: Rank, rewardModel: LlamaConfig? = nil,
                            promptTokens: Int? = nil) throws(ManifestError) -> PPOPlan {
        let spec = m.ppo!, par = m.parallelism
        let dp = par.data, tp = par.tensor, zero3 = par.zero >= 3 && dp > 1
        // The reward and value models' shapes when they are on this machine; else the stated or the policy's, with a scalar head.
        func shape(_ path: String) -> LlamaConfig {
            if let c = try? ModelFiles.config(path) { return c }
            var c = rewardModel ?? model
            c.scalarHead = true
            return c
        }
        let h = shape(spec.helpfulness), s = shape(spec.safety), v = shape(spec.valueInit)
        func tensorShard(_ c: LlamaConfig, _ role: String) throws(ManifestError) -> TensorShard {
            do throws(ConfigError) { return try TensorShard.make(c, rank: 0, size: tp) } catch {
                throw ManifestError(file: m.file, field: "parallelism.tensor", message: "the \(role)'s \(error.field) \(error.message)")
            }
        }
        let prompt = promptTokens ?? spec.maxNewTokens, answer = spec.maxNewTokens
        let seq = min(model.maxSeqLen, prompt + answer), share = spec.miniBatch / dp
        func training(_ c: LlamaConfig, _ role: String) throws(ManifestError) -> RankMemory {
            RankMemory.training(config: c, shard: try tensorShard(c, role), data: dp, zero: par.zero, microBatch: share, seqLen: seq,
                                checkpoint: m.activationCheckpoint, sequenceParallel: par.sequenceParallel, precision: m.precision,
                                batchThreads: rank.batchThreads, asyncCheckpoint: m.checkpoint.interval > 0 && m.checkpoint.async,
                                device: rank.device)
        }
        let policy = try training(model, "policy"), value = try training(v, "value model")
        let helpful = try training(h, "helpfulness reward model"), safe = try training(s, "safety reward model")
        // A model's parameters on a tensor rank.
        func local(_ c: LlamaConfig) throws(ManifestError) -> Double { Double(ParameterLayout(config: c, shard: try tensorShard(c, "model")).total) }
        let policyShard = try tensorShard(model, "policy"), policyLocal = try local(model)

        // Rollouts: this data rank's share of the batch, in generation batches.
        let perRank = spec.rollouts / dp, batch = min(generationBatch, perRank)
        let kvPerToken = 2 * Double(model.layers * policyShard.kvHeads * model.headDim) * 4
        let forward = { (c: LlamaConfig) in c.trainingFLOPsPerToken(seqLen: seq) / 3 / Double(tp) }
        let weightRead = 4 * Double(model.matmulParameterCount) / Double(tp)   // all but the embedding, a lookup
        var rollout = 0.0, decodeBytes = 0.0
        for b in [batch, perRank % batch] where b > 0 {
            let count = Double(b == batch ? perRank / batch : 1)
            let prefill = forward(model) * Double(b * prompt) / rank.flops
            // A step's tokens attend over the prompt and half the answer on average.
            let read = weightRead + Double(b) * (Double(prompt) + Double(answer) / 2) * kvPerToken
            let compute = forward(model) * Double(b) / rank.flops
            let step = rank.bandwidth.map { max(read / $0, compute) } ?? compute
            rollout += count * (prefill + Double(answer) * step)
            if b == batch { decodeBytes = read }
        }
        let tokens = Double(perRank * seq)
        // Colocated, a trainer runs all five forwards; placed apart, the
        // policy's and the value model's while the frozen group runs the
        // other three over every rollout, split over its ranks.
        let groupRanks = spec.frozenGroup
        var scoring = (2 * forward(model) + forward(v) + forward(h) + forward(s)) * tokens / rank.flops
        var frozenGroup: (ranks: Int, memory: RankMemory)?
        if groupRanks > 0 {
            func frozenShard(_ c: LlamaConfig) throws(ManifestError) -> TensorShard {
                do throws(ConfigError) { return try TensorShard.make(c, rank: 0, size: groupRanks) } catch {
                    throw ManifestError(file: m.file, field: "ppo.frozen_ranks", message: "\(error.field) \(error.message)")
                }
            }
            func held(_ c: LlamaConfig) throws(ManifestError) -> RankMemory {
                RankMemory.training(config: c, shard: try frozenShard(c), data: 1, zero: 0, microBatch: share, seqLen: seq,
                                    checkpoint: m.activationCheckpoint, precision: m.precision, batchThreads: rank.batchThreads,
                                    asyncCheckpoint: false, device: rank.device)
            }
            let parts = [try held(model), try held(h), try held(s)]
            frozenGroup = (groupRanks, RankMemory(weights: parts.map(\.weights).reduce(0, +), gradients: 0, optimizer: 0,
                                                  activations: parts.map(\.activations).max()!, snapshot: 0, communication: 0,
                                                  process: parts[0].process))
            let groupForward = { (c: LlamaConfig) in c.trainingFLOPsPerToken(seqLen: seq) / 3 / Double(groupRanks) }
            let apart = (groupForward(model) + groupForward(h) + groupForward(s)) * Double(spec.rollouts * seq) / rank.flops
            scoring = max((forward(model) + forward(v)) * tokens / rank.flops, apart)
        }
        func step(_ c: LlamaConfig) -> Double {
            (c.trainingFLOPsPerToken(seqLen: seq) + c.recomputeFLOPsPerToken(seqLen: seq, checkpoint: m.activationCheckpoint)) / Double(tp)
        }
        let update = (step(model) + step(v)) * tokens / rank.flops
        let generated = forward(model) * Double(perRank * (prompt + answer))
        let perRankFLOPs = generated + (2 * forward(model) + forward(v) + forward(h) + forward(s) + step(model) + step(v)) * tokens

        // ZeRO-3's traffic: the consolidation; a gather per forward of each
        // model per mini-batch share; the update's gathers in forward and
        // backward and its gradients' reduce-scatter.
        var traffic = 0.0
        if zero3 {
            let trained = policyLocal + (try local(v)), frozen = policyLocal + (try local(h)) + (try local(s))
            let miniBatches = Double(spec.rollouts / spec.miniBatch)
            traffic = 4 * Double(dp - 1) / Double(dp) * (policyLocal + miniBatches * (trained + frozen + 3 * trained))
        }
        let colocated = groupRanks == 0
        return PPOPlan(policy: policy, value: value, reference: colocated ? policy.weights : 0,
                       rewardModels: colocated ? helpful.weights + safe.weights : 0, frozenGroup: frozenGroup,
                       consolidated: zero3 ? 4 * policyLocal : 0, kvCache: Double(batch * seq) * kvPerToken,
                       scoringActivations: [policy, value, helpful, safe].map(\.activations).max()!,
                       generationSequences: batch, rolloutSeconds: rollout, scoringSeconds: scoring, updateSeconds: update,
                       bandwidthBound: rank.bandwidth != nil, decodeBytes: decodeBytes, iterations: m.steps,
                       flopsPerIteration: perRankFLOPs * Double(dp * tp), tokensPerIteration: Double(spec.rollouts * seq),
                       zeroTraffic: traffic)
    }

    public var secondsPerIteration: Double { rolloutSeconds + scoringSeconds + updateSeconds }

    /// A rank's bytes in a phase: what persists (every model's weights, the
    /// trained models' gradients and AdamW) and the phase's own.
    public func memory(_ phase: Phase) -> RankMemory {
        var r = RankMemory(weights: policy.weights + value.weights + reference + rewardModels,
                           gradients: policy.gradients + value.gradients, optimizer: policy.optimizer + value.optimizer,
                           activations: 0, snapshot: policy.snapshot + value.snapshot,
                           communication: max(policy.communication, value.communication), process: policy.process)
        switch phase {
        case .rollout: r.weights += consolidated; r.activations = kvCache
        case .scoring: r.activations = scoringActivations
        case .update: r.activations = policy.activations + value.activations
        }
        return r
    }

    /// The phase a trainer holds most in, and what it holds then.
    public var peak: (phase: Phase, memory: RankMemory) {
        Phase.allCases.map { ($0, memory($0)) }.max { $0.1.total < $1.1.total }!
    }

    /// What the fullest rank of the job holds: a trainer at its peak, or a
    /// rank of the frozen group.
    public var fullestRank: RankMemory {
        guard let g = frozenGroup, g.memory.total > peak.memory.total else { return peak.memory }
        return g.memory
    }

    /// "rollout 10.4 s + scoring 4.1 s + update 5.0 s"
    public var phaseSeconds: String {
        String(format: "rollout %.1f s + scoring %.1f s + update %.1f s", rolloutSeconds, scoringSeconds, updateSeconds)
    }

    public var text: String {
        func gb(_ x: Double) -> String { String(format: "%.3g", x / 1e9) }
        func trained(_ r: RankMemory) -> String { "weights \(gb(r.weights)), gradients \(gb(r.gradients)), AdamW \(gb(r.optimizer))" }
        func total(_ p: Phase) -> String { "\(p.rawValue) \(gb(memory(p).total))" }
        var lines = [
            "PPO, per rank (GB): policy: \(trained(policy)); value model: \(trained(value)); "
                + (frozenGroup.map { "frozen models on \($0.ranks) rank(s) of their own, each \(gb($0.memory.total)) (\($0.memory.parts))" }
                   ?? "frozen weights: reference \(gb(reference)), reward models \(gb(rewardModels))"),
            "  by phase (the peak is the largest, not their sum): \(total(.rollout)) (+ "
                + (consolidated > 0 ? "the policy's tensor shard gathered whole \(gb(consolidated)), " : "")
                + "KV cache of \(generationSequences) sequences \(gb(kvCache))), \(total(.scoring)) (+ a forward's activations \(gb(scoringActivations))), "
                + "\(total(.update)) (+ both models' activations \(gb(policy.activations + value.activations)))",
            String(format: "  an iteration: %.1f s = %@ (decoding %@)", secondsPerIteration, phaseSeconds,
                   bandwidthBound ? String(format: "bound by memory bandwidth: %@ GB read a step", gb(decodeBytes))
                                  : "priced as compute: the cluster gives no memory_bandwidth_gbs"),
        ]
        if zeroTraffic > 0 {
            lines.append(String(format: "  not priced: communication (ZeRO-3 moves about %.3g TB per rank an iteration)", zeroTraffic / 1e12))
        }
        return lines.joined(separator: "\n")
    }
}
