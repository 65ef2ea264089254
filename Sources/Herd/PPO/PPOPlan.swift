import Foundation

/// What a PPO job holds on each of its data-parallel ranks, for `herd plan`:
/// the policy (weights, gradients, AdamW), the frozen reference (weights),
/// the value model (weights, gradients, AdamW), both reward models
/// (weights), the KV cache of a generation batch, and the activations of
/// a mini-batch share for the policy and the value model at once — all fp32.
public struct PPOPlan: Sendable {
    public var policy: Double, reference: Double, value: Double, rewardModels: Double
    public var gradients: Double, optimizer: Double
    public var kvCache: Double, activations: Double
    public var flopsPerToken: Double
    /// Tokens of one rollout as priced: a prompt and an answer of max_new_tokens each.
    public var tokensPerRollout: Double

    /// The generation batch rollouts are sampled in (PPOTrainer.sample).
    public static let generationBatch = 32

    /// `rewardModel`: the reward models' shape when their checkpoints are
    /// not on this machine (a pipeline's plan); else the policy's is assumed.
    public static func make(manifest m: JobManifest, model: LlamaConfig, rewardModel: LlamaConfig? = nil) -> PPOPlan {
        let spec = m.ppo!
        // The reward and value models' shapes when they are on this machine; else the stated or the policy's, with a scalar head.
        func shape(_ path: String) -> LlamaConfig {
            if let c = try? ModelFiles.config(path) { return c }
            var c = rewardModel ?? model
            c.scalarHead = true
            return c
        }
        let h = shape(spec.helpfulness), s = shape(spec.safety), v = shape(spec.valueInit)
        func params(_ c: LlamaConfig) -> Double { Double(ParameterLayout(config: c, shard: .whole(c)).total) }
        let p = params(model), pv = params(v)
        let zero = m.parallelism.shardsOptimizer ? Double(m.parallelism.data) : 1
        let share = m.batch.microBatch, seq = min(model.maxSeqLen, 2 * spec.maxNewTokens)
        let kv = Double(generationBatch * model.maxSeqLen * model.kvDim * model.layers * 2)
        let acts = Double(Activations.floatCount(config: model, shard: .whole(model), batch: share, seqLen: seq)
                          + Activations.floatCount(config: v, shard: .whole(v), batch: share, seqLen: seq))
        // Per rollout token: the policy's and the value model's training
        // (6 per parameter), forwards of the sampler, the reference and
        // both reward models (2 per parameter).
        let train = model.trainingFLOPsPerToken(seqLen: seq) + v.trainingFLOPsPerToken(seqLen: seq)
        let forwards = (2 * model.trainingFLOPsPerToken(seqLen: seq) + h.trainingFLOPsPerToken(seqLen: seq) + s.trainingFLOPsPerToken(seqLen: seq)) / 3
        return PPOPlan(policy: 4 * p, reference: 4 * p, value: 4 * pv, rewardModels: 4 * (params(h) + params(s)),
                       gradients: 4 * (p + pv), optimizer: 8 * (p + pv) / zero, kvCache: 4 * kv, activations: 4 * acts,
                       flopsPerToken: train + forwards, tokensPerRollout: Double(seq))
    }

    public var weights: Double { policy + reference + value + rewardModels }

    public var text: String {
        String(format: "PPO, on every rank: policy %.3g GB, reference %.3g, value model %.3g, reward models %.3g (weights), gradients %.3g, AdamW %.3g, generation KV cache %.3g, activations %.3g",
               policy / 1e9, reference / 1e9, value / 1e9, rewardModels / 1e9, gradients / 1e9, optimizer / 1e9, kvCache / 1e9, activations / 1e9)
    }
}
