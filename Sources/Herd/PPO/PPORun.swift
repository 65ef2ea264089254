import Foundation

/// A PPO job in the training loop every job runs (TrainingLoop), and its
/// run directory: the policy's checkpoints in RUN/checkpoints (so RUN is a
/// model directory like any fine-tune's) and the value model's in
/// RUN/value/checkpoints, each with its AdamW state. The value model's
/// checkpoint of step s is written before the policy's: a policy
/// checkpoint always has its value checkpoint beside it.
extension PPOTrainer {
    var valueRun: StandaloneRun {
        StandaloneRun(output: RunDirectory(manifest.output).valueModel.root, name: manifest.name + "-value", seed: manifest.seed)
    }

    public var trainedModel: Llama { policy }
    public var asyncCheckpointer: AsyncCheckpointer? { nil }
    public var eventEveryStep: Bool { true }

    public func save() throws -> CheckpointWriter.Result {
        let settings = manifest.checkpoint
        _ = try CheckpointWriter.save(step: step, sequencesConsumed: step * rollouts, model: value, optimizer: valueSync.optimizer,
                                      context: context, job: valueRun, settings: settings)
        return try CheckpointWriter.save(step: step, sequencesConsumed: step * rollouts, model: policy, optimizer: policySync.optimizer,
                                         context: context, job: manifest, settings: settings)
    }

    /// Loads the policy and value checkpoints of step `s` (every rank the same).
    public func load(checkpointStep s: Int) throws -> (event: RunEvent, line: String) {
        let store = CheckpointStore(runDirectory: manifest.output)
        let valueDir = CheckpointStore(runDirectory: valueRun.output).path(step: s)
        guard FileManager.default.fileExists(atPath: valueDir) else {
            throw CheckpointError.missing(valueDir + " (the value model's checkpoint of the policy's step \(s))")
        }
        let loaded = try CheckpointLoader.load(dir: store.path(step: s), model: policy, optimizer: policySync.optimizer)
        _ = try CheckpointLoader.load(dir: valueDir, model: value, optimizer: valueSync.optimizer)
        step = loaded.step
        return (.resumed(step: step), "resumed at PPO iteration \(step)")
    }

    /// The policy and value model were loaded from their inits when the trainer was made.
    public func begin() throws -> (event: RunEvent, line: String?)? {
        (.initialized(from: manifest.initFrom!, valueFrom: spec.valueInit), nil)
    }

    public func announce() -> (event: RunEvent, line: String) {
        let m = manifest
        var start = RunEvent(.start)
        start.job = m.name; start.jobKind = "ppo"; start.parameters = policy.config.parameterCount; start.steps = m.steps
        start.rollouts = rollouts; start.miniBatch = spec.miniBatch; start.beta = spec.beta; start.prompts = prompts.count
        start.dataParallel = context.data.size; start.tokensPerStep = rollouts * spec.maxNewTokens
        return (start, "\(m.name): PPO on \(policy.config.parameterCount) parameters from \(m.initFrom!), \(m.steps) iterations of \(rollouts) rollouts "
                + "(mini-batches of \(spec.miniBatch)), β \(spec.beta), clip \(spec.clip), \(prompts.count) prompts, \(context.data.size) data-parallel rank(s)")
    }

    /// One PPO iteration as a step of the loop: its measures go into the step event.
    public func trainStep() throws -> StepReport {
        let r = try iterate()
        let lr = manifest.schedule.rate(at: step - 1)
        var e = RunEvent.trainStep(step: step, loss: r.policyLoss, lr: lr, gradNorm: r.gradNorm, tokensPerSecond: .nan)
        e.reward = r.reward; e.kl = r.kl; e.policyLoss = r.policyLoss; e.valueLoss = r.valueLoss
        e.clipFraction = r.clipFraction; e.entropy = r.entropy; e.responseLength = r.responseLength
        e.stepSeconds = r.seconds; e.rolloutSeconds = r.rolloutSeconds
        e.rolloutTokensPerSecond = r.responseLength * Double(rollouts) / max(r.rolloutSeconds, 1e-9); e.scoringSeconds = r.scoringSeconds; e.updateSeconds = r.updateSeconds
        return StepReport(step: step, loss: r.policyLoss, lr: lr, gradNorm: r.gradNorm, seconds: r.seconds,
                          tokens: r.responseLength * Double(rollouts), finite: r.valueLoss.isFinite, event: e)
    }

    /// PPO's held-out judgement is the pipeline's evaluation stage, not the job's.
    public func evaluate() throws -> (event: RunEvent, line: String, loss: Double)? { nil }

    public func progressLine(_ r: StepReport, tokensPerSecond: Double, eta: Double) -> String {
        let e = r.event
        return String(format: "PPO %d/%d | reward %.4f | KL %.4f | policy loss %.4f | value loss %.4f | clip %.3f | entropy %.3f | length %.1f | %.1f s",
                      r.step, manifest.steps, e.reward ?? .nan, e.kl ?? .nan, r.loss, e.valueLoss ?? .nan, e.clipFraction ?? .nan,
                      e.entropy ?? .nan, e.responseLength ?? .nan, r.seconds)
    }
}
