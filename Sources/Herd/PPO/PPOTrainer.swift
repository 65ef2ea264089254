import Foundation

/// PPO as the Llama 2 paper runs it (section 3.2.3), on the ranks of a job.
/// The policy and the value model train as any job's model does, with its
/// tensor and sequence parallelism, ZeRO stage, recomputation and
/// precision. The frozen models — the reference (the model PPO starts
/// from) and both reward models — sit on the same ranks, split over the
/// same tensor group and, at ZeRO-3, sharded over the data ranks. One PPO
/// iteration:
///
/// 1. rollouts: `ppo.rollouts` answers, rollout g to prompt
///    EpochOrder(seed, step·rollouts + g), sampled from stream (seed, step, g);
///    mini-batch j is rollouts [j·M, (j+1)·M), and each data rank samples
///    its equal share of every mini-batch, its tensor group generating
///    together; at ZeRO-3 the policy's weights are gathered once into the
///    whole tensor shard for the rollouts and given back after (the
///    paper's consolidation before generation), not layer by layer per token;
/// 2. log π_old, log π₀ and the values of every answer token; the reward
///    models' R_c; WHITEN(LOGIT(R_c)) over the whole batch (all ranks);
///    per-token rewards with the −β·KL penalty; GAE;
/// 3. one gradient step per mini-batch: the clipped surrogate for the
///    policy and ½(V − R)² for the value model, each mean over the
///    mini-batch's answer tokens on all ranks, all-reduced, clipped, AdamW.
///
/// Everything random is keyed by (seed, step, rollout), so a run resumed
/// from the checkpoint of step s (policy, value model, both optimizers)
/// continues exactly as the uninterrupted run, and any number of ranks
/// computes the same iteration.
public final class PPOTrainer: TrainingTask {
    public let manifest: JobManifest
    public let spec: PPOSpec
    public let context: ParallelContext
    public let policy: Llama
    public let value: Llama
    /// The reference and both reward models on this rank (colocated), or
    /// the link to the group of ranks that holds them (`ppo.placement: separate`).
    let frozen: FrozenModels?
    let link: FrozenGroupLink?
    let sampler: ChatSampler
    let prompts: [PromptRecord]
    let policySync: GradientSync, valueSync: GradientSync
    /// PPO iterations done.
    public internal(set) var step = 0
    /// Told of the rollouts' progress within an iteration (the coordinator's hang detection).
    public var heartbeat: Heartbeat?

    public var tokenizer: any Tokenizer { sampler.tokenizer }

    /// What one iteration measured, over the whole batch (all ranks).
    public struct Metrics: Sendable {
        public var step: Int
        /// Mean R_c (σ-scale, before LOGIT and WHITEN).
        public var reward: Double
        /// Mean over answers of Σ_t log π_old − log π₀.
        public var kl: Double
        public var policyLoss: Double, valueLoss: Double
        /// Share of answer tokens whose ratio was clipped.
        public var clipFraction: Double
        /// Mean per-token entropy of the policy (nats).
        public var entropy: Double
        /// Mean answer length in tokens.
        public var responseLength: Double
        public var gradNorm: Double
        public var seconds: Double
        /// Where the iteration's time went: sampling the answers; the
        /// policy, reference and value forwards and both reward models;
        /// the gradient steps.
        public var rolloutSeconds: Double, scoringSeconds: Double, updateSeconds: Double
    }

    /// `link`: where the frozen models are when they have ranks of their own.
    init(manifest m: JobManifest, context: ParallelContext, link: FrozenGroupLink?) throws {
        guard m.kind == .ppo, let spec = m.ppo, let initFrom = m.initFrom else {
            throw ManifestError(file: m.file, field: "kind", message: "a PPO trainer needs a job of kind ppo")
        }
        manifest = m
        self.spec = spec
        self.context = context
        let trained = ModelPlacement(tensor: context.tensor, data: context.data, zero: context.zero,
                                     sequenceParallel: m.parallelism.sequenceParallel, precision: m.precision)
        let (policy, tokenizer) = try ModelFiles.loadModelAndTokenizer(initFrom, role: "policy", placement: trained)
        guard !policy.config.scalarHead else { throw ManifestError(file: m.file, field: "init", message: "\(initFrom) is a reward model, not a chat policy") }
        self.policy = policy
        value = try ModelFiles.loadModel(spec.valueInit, placement: trained)
        self.link = link
        frozen = link == nil ? try FrozenModels(manifest: m, placement: trained.frozen) : nil
        sampler = try ChatSampler(model: policy, tokenizer: tokenizer)
        let path = m.data.prompts!
        prompts = try JSONLines.read(PromptRecord.self, path: path) { (p: PromptRecord) throws(RecordError) in
            try JSONLines.checkTurns(p.dialogue, endsWithAssistant: false)
        }
        guard !prompts.isEmpty else { throw ManifestError(file: m.file, field: "data.prompts", message: "\(path) holds no prompts") }
        policySync = GradientSync(model: policy, context: context, adamw: m.optimizer.adamw)
        valueSync = GradientSync(model: value, context: context, adamw: m.optimizer.adamw)
        Matmul.threads = context.rank.threads
    }

    /// The job on `context`, its frozen models on the same ranks.
    public convenience init(manifest m: JobManifest, context: ParallelContext) throws {
        try self.init(manifest: m, context: context, link: nil)
    }

    /// The whole job in this process.
    public convenience init(manifest m: JobManifest) throws {
        let threads = m.threads ?? ProcessInfo.processInfo.activeProcessorCount
        try self.init(manifest: m, context: .single(model: m.model.config, sequences: m.batch.sequences, threads: threads))
    }

    /// The frozen models' group, when it has ranks of its own, leaves its
    /// loop (the end of the run, or a stop every trainer agreed on).
    public func releaseFrozenGroup(stopped: Bool) throws { try link?.release(step: step, stopped: stopped) }

    var rollouts: Int { spec.rollouts }
    var checkpoint: ActivationCheckpoint { manifest.activationCheckpoint }
    /// Sequence parallelism splits a batch's rows over the tensor ranks: its length is padded to a multiple of them.
    var lengthMultiple: Int { policy.sequenceParallel ? context.tensor.size : 1 }
    var miniBatches: Int { spec.rollouts / spec.miniBatch }

    /// This rank's share of each mini-batch.
    var share: Int { spec.miniBatch / context.data.size }

    /// The rollouts this rank samples and trains on: its share of each
    /// mini-batch, mini-batch after mini-batch.
    var mine: [Int] {
        let d = context.data.rank
        return (0..<miniBatches).flatMap { j in (0..<share).map { j * spec.miniBatch + d * share + $0 } }
    }

    /// Where mini-batch j's share lies in this rank's rollouts (in `mine`'s order).
    func part(_ j: Int) -> Range<Int> { (j * share)..<((j + 1) * share) }

    // MARK: one iteration

    public func iterate() throws -> Metrics {
        let start = DispatchTime.now().uptimeNanoseconds
        func since(_ t: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9 }
        var batch = try sample()
        let sampled = DispatchTime.now().uptimeNanoseconds
        // Placed apart, the frozen models score while this rank runs the policy and the value model.
        try link?.request(batch, step: step)
        var scores = try frozenScores(batch)
        score(&batch)
        if let link { scores = link.receive() }
        for i in batch.indices {
            guard let s = scores[batch[i].index] else { throw FrozenGroupLink.MissingScores(rollout: batch[i].index) }
            batch[i].referenceLogProbs = s.referenceLogProbs
        }
        let stats = try reward(&batch, scores)
        let scored = DispatchTime.now().uptimeNanoseconds
        var sums = [0.0, 0.0, 0.0, 0.0]   // policy loss, value loss, clipped tokens, gradient norm
        for j in 0..<miniBatches {
            let r = update(Array(batch[part(j)]))
            sums[0] += r.policyLoss; sums[1] += r.valueLoss; sums[2] += r.clipped; sums[3] += r.gradNorm
        }
        step += 1
        let n = Double(miniBatches)
        return Metrics(step: step, reward: stats.reward, kl: stats.kl, policyLoss: sums[0] / n, valueLoss: sums[1] / n,
                       clipFraction: sums[2] / max(stats.tokens, 1), entropy: stats.entropy, responseLength: stats.tokens / Double(rollouts),
                       gradNorm: sums[3] / n, seconds: since(start), rolloutSeconds: Double(sampled - start) / 1e9,
                       scoringSeconds: Double(scored - sampled) / 1e9, updateSeconds: since(scored))
    }

    /// This rank's rollouts of the current iteration: prompts and sampled answers.
    func sample() throws -> [Rollout] {
        let seed = manifest.seed
        var out: [Rollout] = try mine.map { g in
            let p = prompts[EpochOrder.item(seed: seed, index: step * rollouts + g, count: prompts.count)]
            return Rollout(index: g, prompt: p, promptTokens: try sampler.promptTokens(p.dialogue, maxNewTokens: spec.maxNewTokens + lengthMultiple - 1))
        }
        // ZeRO-3: the whole tensor shard once for all the rollouts, given back after.
        let consolidates = policy.shards?.weights != nil
        if consolidates { policy.shards!.gatherIntoParams() }
        defer { if consolidates { policy.params.zero() } }
        let g = sampler.generator(batch: min(PPOPlan.generationBatch, max(out.count, 1)), prompts: out.map(\.promptTokens),
                                  maxNewTokens: spec.maxNewTokens, threads: context.rank.threads)
        g.onStep = { [heartbeat, step] in heartbeat?.progress(step: step, phase: "rollouts") }
        let answers = g.generate(out.map(\.promptTokens), options: sampler.options(spec.temperature, spec.maxNewTokens),
                                 seeds: out.map { SplitMix64.mix(SplitMix64.mix(seed ^ 0x9907, UInt64(step)), UInt64($0.index)) })
        for (k, a) in answers.enumerated() {
            out[k].answer = a
            out[k].text = sampler.text(a)
        }
        return out
    }

    /// The frozen models' scores of this rank's rollouts, by index, a
    /// mini-batch's share at a time (none here when they are placed apart).
    func frozenScores(_ batch: [Rollout]) throws -> [Int: FrozenModels.Scores] {
        guard let frozen else { return [:] }
        var out: [Int: FrozenModels.Scores] = [:]
        for j in 0..<miniBatches {
            let part = Array(batch[self.part(j)])
            for (r, s) in zip(part, try frozen.score(part, lengthMultiple: lengthMultiple)) { out[r.index] = s }
        }
        return out
    }

    /// log π_old, the values and the policy's entropy of every answer
    /// token, a mini-batch's share at a time.
    func score(_ batch: inout [Rollout]) {
        for j in 0..<miniBatches {
            let part = self.part(j)
            let padded = RolloutBatch(Array(batch[part]), lengthMultiple: lengthMultiple)
            let acts = padded.activations(policy, checkpoint: checkpoint)
            let old = policy.tokenLogProbs(tokens: padded.tokens, targets: padded.targets, acts: acts)
            let entropies = policy.rowEntropies(acts)
            let entropy = padded.split { entropies[$0] }
            let values = self.values(padded)
            for (k, i) in part.enumerated() {
                batch[i].logProbs = padded.rows[k].map { old[$0] }
                batch[i].values = values[k]
                batch[i].entropy = entropy[k].reduce(0, +)
            }
        }
    }

    /// The value model's estimate at every answer token (its scalar head on the rows).
    func values(_ padded: RolloutBatch, acts: Activations? = nil) -> [[Float]] {
        let a = acts ?? padded.activations(value, checkpoint: checkpoint)
        padded.tokens.withUnsafeBufferPointer { value.forwardLogits(tokens: $0.baseAddress!, acts: a) }
        return padded.split { a.logits[$0] }
    }

    /// R_c of each answer, the batch's whitened scores (gathered from every
    /// rank), per-token rewards and GAE; returns the batch's means.
    func reward(_ batch: inout [Rollout], _ scores: [Int: FrozenModels.Scores]) throws -> (reward: Double, kl: Double, entropy: Double, tokens: Double) {
        var combined = [Double](repeating: 0, count: rollouts)
        for r in batch {
            let s = scores[r.index]!
            combined[r.index] = PPOReward.combined(helpful: RewardModels.sigmoid(s.helpful), safety: RewardModels.sigmoid(s.safety),
                                                   safetyPrompt: r.prompt.safety ?? false)
        }
        context.data.allReduce(&combined, count: rollouts, op: .sum)
        let scores = PPOReward.scores(combined: combined)
        var sums = [0.0, 0.0, 0.0, 0.0, 0.0]   // KL, entropy, tokens, Σ advantage, Σ advantage²
        for i in batch.indices where !batch[i].answer.isEmpty {
            let r = batch[i]
            let perToken = PPOReward.tokenRewards(score: scores[r.index], logProbs: r.logProbs, referenceLogProbs: r.referenceLogProbs, beta: spec.beta)
            let gae = PPOReward.advantages(rewards: perToken, values: r.values.map(Double.init), gamma: spec.gamma, lambda: spec.lambda)
            batch[i].advantages = gae.advantages.map(Float.init)
            batch[i].returns = gae.returns.map(Float.init)
            sums[0] += r.kl; sums[1] += r.entropy; sums[2] += Double(r.answer.count)
            sums[3] += gae.advantages.reduce(0, +); sums[4] += gae.advantages.reduce(0) { $0 + $1 * $1 }
        }
        context.data.allReduce(&sums, count: sums.count, op: .sum)
        if spec.whitenAdvantages && sums[2] > 0 {
            let mean = sums[3] / sums[2], variance = max(0, sums[4] / sums[2] - mean * mean)
            let scale = 1 / (variance + 1e-8).squareRoot()
            for i in batch.indices { batch[i].advantages = batch[i].advantages.map { Float((Double($0) - mean) * scale) } }
        }
        return (combined.reduce(0, +) / Double(rollouts), sums[0] / Double(rollouts), sums[1] / max(sums[2], 1), sums[2])
    }

    /// One gradient step of the policy and one of the value model on a
    /// mini-batch (this rank's share of it). A rank whose share has no
    /// answer tokens still runs forward and backward when its models'
    /// collectives span the data ranks (ZeRO-2/3), with zero gradients.
    func update(_ part: [Rollout]) -> (policyLoss: Double, valueLoss: Double, clipped: Double, gradNorm: Double) {
        let padded = RolloutBatch(part, lengthMultiple: lengthMultiple)
        let local = Double(part.reduce(0) { $0 + $1.answer.count })
        let total = max(context.data.allReduce(local), 1)
        let weight = Float(local / total)   // this rank's share of the mini-batch's mean
        var stats = [0.0, 0.0, 0.0]
        policy.zeroGradients()
        value.zeroGradients()
        if local > 0 || context.shardsGradients {
            let acts = padded.activations(policy, checkpoint: checkpoint)
            let now = policy.tokenLogProbs(tokens: padded.tokens, targets: padded.targets, acts: acts)
            var gradLogProbs = [Float](repeating: 0, count: padded.tokens.count)
            if local > 0 {
                let surrogate = ClippedSurrogate.forwardBackward(
                    logProbs: padded.rows.flatMap { $0.map { now[$0] } }, oldLogProbs: part.flatMap(\.logProbs),
                    advantages: part.flatMap(\.advantages), clip: Float(spec.clip))
                gradLogProbs = padded.scatter(flat: surrogate.gradLogProbs.map { $0 * weight })
                stats[0] = surrogate.loss * local
                stats[2] = surrogate.clipFraction * local
            }
            policy.backwardLogProbs(tokens: padded.tokens, targets: padded.targets, gradLogProbs: gradLogProbs, acts: acts)

            let vActs = padded.activations(value, checkpoint: checkpoint)
            let v = values(padded, acts: vActs)
            var dValues = [Float](repeating: 0, count: padded.tokens.count)
            if local > 0 {
                let vl = ClippedSurrogate.valueLoss(values: v.flatMap { $0 }, returns: part.flatMap(\.returns))
                stats[1] = vl.loss * local
                dValues = padded.scatter(flat: vl.gradValues.map { $0 * weight })
            }
            vActs.logits.base.update(from: dValues, count: dValues.count)
            padded.tokens.withUnsafeBufferPointer { value.backward(tokens: $0.baseAddress!, acts: vActs, grads: value.grads) }
        }
        let lr = manifest.schedule.rate(at: step)
        let norm = policySync.step(lr: lr, maxNorm: manifest.optimizer.gradClip, threads: context.rank.threads)
        _ = valueSync.step(lr: spec.valueLR, maxNorm: manifest.optimizer.gradClip, threads: context.rank.threads)
        context.data.allReduce(&stats, count: 3, op: .sum)
        return (stats[0] / total, stats[1] / total, stats[2], norm)
    }
}
