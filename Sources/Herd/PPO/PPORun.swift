import Foundation

/// A PPO job's run directory: the policy's checkpoints in RUN/checkpoints
/// (so RUN is a model directory like any fine-tune's) and the value
/// model's in RUN/value/checkpoints, each with its AdamW state. The value
/// model's checkpoint of step s is written before the policy's: a policy
/// checkpoint always has its value checkpoint beside it.
extension PPOTrainer {
    var valueRun: StandaloneRun {
        StandaloneRun(output: RunDirectory(manifest.output).valueModel.root, name: manifest.name + "-value", seed: manifest.seed)
    }

    func save() throws -> CheckpointWriter.Result {
        let settings = manifest.checkpoint
        _ = try CheckpointWriter.save(step: step, sequencesConsumed: step * rollouts, model: value, optimizer: valueSync.optimizer,
                                      context: context, job: valueRun, settings: settings)
        return try CheckpointWriter.save(step: step, sequencesConsumed: step * rollouts, model: policy, optimizer: policySync.optimizer,
                                         context: context, job: manifest, settings: settings)
    }

    /// Loads the policy and value checkpoints of the newest complete step
    /// (rank 0 chooses, every rank loads the same); nil when there is none.
    func resume(note: (String) -> Void) throws -> Int? {
        let store = CheckpointStore(runDirectory: manifest.output)
        guard let s = try store.agreedResumeStep(context.world, note: note) else { return nil }
        let valueDir = CheckpointStore(runDirectory: valueRun.output).path(step: s)
        guard FileManager.default.fileExists(atPath: valueDir) else {
            throw CheckpointError.missing(valueDir + " (the value model's checkpoint of the policy's step \(s))")
        }
        let loaded = try CheckpointLoader.load(dir: store.path(step: s), model: policy, optimizer: policySync.optimizer)
        _ = try CheckpointLoader.load(dir: valueDir, model: value, optimizer: valueSync.optimizer)
        step = loaded.step
        return step
    }

    public struct Summary: Sendable {
        public var steps: Int
        public var last: Metrics?
        public var seconds: Double
    }

    public static func doneLine(_ s: Summary, run: String) -> String {
        guard let l = s.last else { return "done: \(s.steps) PPO iterations (nothing left to run); run directory \(run)" }
        return String(format: "done: %d PPO iterations, reward %.4f, KL %.4f, %.1f s; run directory %@", s.steps, l.reward, l.kl, s.seconds, run)
    }

    /// Runs to the manifest's step count, resuming from the run directory's
    /// newest checkpoint. The leader writes the run directory, events and
    /// progress lines; a stop request checkpoints and stops every rank.
    public func run(resume shouldResume: Bool = true, output: (String) -> Void = { print($0) }) throws -> Summary {
        let m = manifest, lead = context.isLeader
        var events: EventLog?
        if lead {
            try FileManager.default.createDirectory(atPath: m.output, withIntermediateDirectories: true)
            try RunFiles.writeStart(dir: m.output, manifest: m, model: policy.config, tokenizer: tokenizer)
            events = try EventLog(run: RunDirectory(m.output))
            var start = RunEvent(.start)
            start.job = m.name; start.jobKind = "ppo"; start.parameters = policy.config.parameterCount; start.steps = m.steps
            start.rollouts = rollouts; start.miniBatch = spec.miniBatch; start.beta = spec.beta; start.prompts = prompts.count
            start.dataParallel = context.data.size; start.tokensPerStep = rollouts * spec.maxNewTokens
            events?.write(start)
            output("\(m.name): PPO on \(policy.config.parameterCount) parameters from \(m.initFrom!), \(m.steps) iterations of \(rollouts) rollouts "
                   + "(mini-batches of \(spec.miniBatch)), β \(spec.beta), clip \(spec.clip), \(prompts.count) prompts, \(context.data.size) data-parallel rank(s)")
        }
        if shouldResume, let s = try resume(note: { if lead { output("herd: \($0)") } }) {
            events?.write(.resumed(step: s))
            if lead { output("resumed at PPO iteration \(s)") }
        } else {
            events?.write(.initialized(from: m.initFrom!, valueFrom: spec.valueInit))
        }
        var last: Metrics?, total = 0.0
        while step < m.steps {
            let r = try trainStep()
            last = r
            total += r.seconds
            heartbeat?.progress(step: step, phase: "train")
            guard r.policyLoss.isFinite, r.valueLoss.isFinite else {
                throw TrainingError.nonFinite(step: step, loss: r.policyLoss, gradNorm: r.gradNorm)
            }
            let tokens = r.responseLength * Double(rollouts)
            var e = RunEvent.trainStep(step: step, loss: r.policyLoss, lr: m.schedule.rate(at: step - 1), gradNorm: r.gradNorm,
                                       tokensPerSecond: tokens / r.seconds)
            e.reward = r.reward; e.kl = r.kl; e.policyLoss = r.policyLoss; e.valueLoss = r.valueLoss
            e.clipFraction = r.clipFraction; e.entropy = r.entropy; e.responseLength = r.responseLength
            e.stepSeconds = r.seconds; e.rolloutSeconds = r.rolloutSeconds; e.scoringSeconds = r.scoringSeconds; e.updateSeconds = r.updateSeconds
            events?.write(e)
            if lead && (step % m.logInterval == 0 || step == 1 || step == m.steps) {
                output(String(format: "PPO %d/%d | reward %.4f | KL %.4f | policy loss %.4f | value loss %.4f | clip %.3f | entropy %.3f | length %.1f | %.1f s",
                              step, m.steps, r.reward, r.kl, r.policyLoss, r.valueLoss, r.clipFraction, r.entropy, r.responseLength, r.seconds))
            }
            let stopping = context.world.allReduce(StopSignal.isRequested ? 1 : 0, op: .max) > 0
            if stopping || (m.checkpoint.interval > 0 && (step % m.checkpoint.interval == 0 || step == m.steps)) {
                let saved = try save()
                events?.write(.checkpointWritten(step: step, path: saved.directory, bytes: saved.bytes, seconds: saved.seconds))
                if stopping {
                    events?.write(.stoppedAt(step: step, checkpoint: saved.directory))
                    throw TrainingError.stopped(step: step, checkpoint: saved.directory)
                }
            }
        }
        var end = RunEvent.ended(step: step, trainLoss: last?.policyLoss ?? .nan, trainSeconds: total)
        end.reward = last?.reward; end.kl = last?.kl
        events?.write(end)
        return Summary(steps: step, last: last, seconds: total)
    }
}
