import Foundation

/// What one kind of training does at each point of the loop. The loop
/// itself — start, resume from the step every rank agrees on, heartbeat,
/// the non-finite guard, a stop request answered with a checkpoint,
/// interval checkpoints, evaluations, the end — is `TrainingLoop`, the same
/// for pretraining, SFT, reward models (`Trainer`) and PPO (`PPOTrainer`).
public protocol TrainingTask: AnyObject {
    var manifest: JobManifest { get }
    var context: ParallelContext { get }
    /// The model the job trains (a PPO job's policy); its shape and the
    /// tokenizer are written into the run directory, where generation reads them.
    var trainedModel: Llama { get }
    var tokenizer: any Tokenizer { get }
    /// Optimizer steps (PPO iterations) done so far.
    var step: Int { get }
    /// The `start` event and the line announcing the run.
    func announce() -> (event: RunEvent, line: String)
    /// Loads the checkpoint of step `s`, which every rank agreed on.
    func load(checkpointStep s: Int) throws -> (event: RunEvent, line: String)
    /// The starting weights when there is nothing to resume (an init), if any.
    func begin() throws -> (event: RunEvent, line: String?)?
    /// One step. The report's event is the `step` event, tokens/s left to the loop.
    func trainStep() throws -> StepReport
    /// A checkpoint of the current step, written now.
    func save() throws -> CheckpointWriter.Result
    /// Background saves, when the job checkpoints asynchronously.
    var asyncCheckpointer: AsyncCheckpointer? { get }
    /// A held-out evaluation: its event and line; nil for a task with none.
    func evaluate() throws -> (event: RunEvent, line: String, loss: Double)?
    /// The progress line of a logged step.
    func progressLine(_ r: StepReport, tokensPerSecond: Double, eta: Double) -> String
    /// Told of every step, evaluation and checkpoint (the coordinator's hang detection).
    var heartbeat: Heartbeat? { get set }
    /// Whether every step writes its event (a PPO iteration is expensive and
    /// every one is a point of its curves) or only the logged ones.
    var eventEveryStep: Bool { get }
}

extension TrainingTask {
    /// Writes this rank's piece of the trained weights, raw fp32, to
    /// RUN/weights/rank-NNNNN.f32 (checkpoints proper are their own part).
    public func saveWeights() throws {
        let dir = RunDirectory(manifest.output).weights, model = trainedModel
        model.shards?.gatherIntoParams()   // ZeRO-3: the whole model, for once
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let data = Data(bytes: model.params.base, count: model.layout.total * 4)
        try data.write(to: URL(fileURLWithPath: dir).appendingPathComponent(String(format: "rank-%05d.f32", context.world.rank)),
                       options: .atomic)
    }
}

/// What one step did, over the whole batch (all ranks).
public struct StepReport: Sendable {
    public var step: Int
    /// The loss the run reports and guards (a PPO step's policy loss).
    public var loss: Double
    public var lr: Double
    public var gradNorm: Double
    public var seconds: Double
    /// Tokens the step processed, for tokens/s.
    public var tokens: Double
    /// Whether every loss of the step is finite (PPO has two).
    public var finite: Bool
    /// The `step` event, with the task's own measures.
    public var event: RunEvent
}

/// How a training run ended.
public struct TrainingSummary: Sendable {
    public var steps: Int
    public var finalTrainLoss: Double
    public var finalValidationLoss: Double
    public var tokensPerSecond: Double
    public var seconds: Double
    /// The last step's event (a PPO run's reward and KL are in it).
    public var last: RunEvent?

    /// The line `herd run` and a job's first rank print at the end.
    public func doneLine(kind: JobManifest.Kind, run: String) -> String {
        if kind == .ppo {
            guard let l = last else { return "done: \(steps) PPO iterations (nothing left to run); run directory \(run)" }
            return String(format: "done: %d PPO iterations, reward %.4f, KL %.4f, %.1f s; run directory %@",
                          steps, l.reward ?? .nan, l.kl ?? .nan, seconds, run)
        }
        let heldOut = finalValidationLoss.isNaN ? "no held-out split" : String(format: "held-out loss %.4f", finalValidationLoss)
        return String(format: "done: %d steps, train loss %.4f, %@, %.0f tokens/s, %.1f s; run directory %@",
                      steps, finalTrainLoss, heldOut, tokensPerSecond, seconds, run)
    }
}

/// The training loop every job kind runs, on one rank of a process grid (or
/// the whole job in one process). The leader (world rank 0) writes the run
/// directory and prints progress; every rank computes and takes every
/// collective decision (resume step, stop) with the others.
public struct TrainingLoop {
    public let task: any TrainingTask
    /// Resume from this step instead of the newest checkpoint.
    public var resumeStep: Int?

    public init(_ task: any TrainingTask, resumeStep: Int? = nil) {
        self.task = task; self.resumeStep = resumeStep
    }

    /// Trains to the manifest's step count. A non-finite loss stops the run
    /// with an error; a stop request on any rank stops every rank after a checkpoint.
    public func run(resume: Bool = true, output: (String) -> Void = { print($0) }) throws -> TrainingSummary {
        let m = task.manifest, context = task.context, lead = context.isLeader
        var events: EventLog?
        if lead {
            try FileManager.default.createDirectory(atPath: m.output, withIntermediateDirectories: true)
            try RunFiles.writeStart(dir: m.output, manifest: m, model: task.trainedModel.config, tokenizer: task.tokenizer)
            events = try EventLog(run: RunDirectory(m.output))
            let (event, line) = task.announce()
            events?.write(event)
            output(line)
        }
        let note: (String) -> Void = { if lead { output("herd: \($0)") } }
        if lead {
            // What an interrupted save left (a rank that found no space, a kill mid-save) only holds space:
            // gone before this run writes (a PPO job's value model keeps checkpoints of its own).
            for run in [m.output, RunDirectory(m.output).valueModel.root] {
                let store = CheckpointStore(runDirectory: run)
                for name in store.removeUnfinished() { output("herd: removed \((store.root as NSString).appendingPathComponent(name)), left by an unfinished save") }
            }
        }
        if resume, let s = try CheckpointStore(runDirectory: m.output).agreedResumeStep(context.world, requested: resumeStep, note: note) {
            let (event, line) = try task.load(checkpointStep: s)
            events?.write(event)
            if lead { output(line) }
        } else if let (event, line) = try task.begin() {
            events?.write(event)
            if lead, let line { output(line) }
        }

        let startStep = task.step
        var totalSeconds = 0.0, totalTokens = 0.0, windowSeconds = 0.0, windowTokens = 0.0
        var last: StepReport?, validation = Double.nan
        func logged(_ saved: CheckpointWriter.Result?) {
            guard let saved else { return }
            events?.write(.checkpointWritten(step: Int(saved.directory.suffix(8)) ?? task.step, path: saved.directory,
                                             bytes: saved.bytes, seconds: saved.seconds))
        }
        while task.step < m.steps {
            var r = try task.trainStep()
            let step = task.step
            task.heartbeat?.progress(step: step, phase: "train")
            guard r.finite, r.loss.isFinite, r.gradNorm.isFinite else {
                throw TrainingError.nonFinite(step: step, loss: r.loss, gradNorm: r.gradNorm)
            }
            totalSeconds += r.seconds
            totalTokens += r.tokens
            windowSeconds += r.seconds
            windowTokens += r.tokens
            let logStep = step % m.logInterval == 0 || step == m.steps || step == 1
            if logStep || task.eventEveryStep {
                let tps = windowTokens / max(windowSeconds, 1e-9)
                r.event.tokensPerSecond = tps
                r.event.peakResidentBytes = ProcessMemory.current()?.peakResidentBytes
                events?.write(r.event)
                if lead && logStep {
                    output(task.progressLine(r, tokensPerSecond: tps, eta: Double(m.steps - step) * totalSeconds / Double(step - startStep)))
                }
                windowSeconds = 0; windowTokens = 0
            }
            last = r
            defer { task.heartbeat?.progress(step: task.step, phase: "step done") }
            logged(try task.asyncCheckpointer?.poll())
            // A stop request on any rank stops every rank, after a checkpoint.
            if context.world.allReduce(StopSignal.isRequested ? 1 : 0, op: .max) > 0 {
                logged(try task.asyncCheckpointer?.finish())
                let saved = try task.save()
                logged(saved)
                events?.write(.stoppedAt(step: step, checkpoint: saved.directory))
                throw TrainingError.stopped(step: step, checkpoint: saved.directory)
            }
            if m.checkpoint.interval > 0 && (step % m.checkpoint.interval == 0 || step == m.steps) {
                if let background = task.asyncCheckpointer {
                    logged(try background.start(step: step, sequencesConsumed: step * m.batch.sequences))
                } else {
                    logged(try task.save())
                }
            }
            if (m.eval.interval > 0 && step % m.eval.interval == 0) || step == m.steps, let e = try task.evaluate() {
                validation = e.loss
                events?.write(e.event)
                if lead { output(e.line) }
            }
        }
        logged(try task.asyncCheckpointer?.finish())
        let tps = totalTokens / max(totalSeconds, 1e-9)
        // Every rank's peak, the largest of them in the end event (a collective: every rank ends here).
        let peak = ProcessMemory.current()?.peakResidentBytes
        let peakMax = context.world.allReduce(Double(peak ?? 0), op: .max)
        let peakMin = -context.world.allReduce(-Double(peak ?? 0), op: .max)
        var end = RunEvent.ended(step: task.step, trainLoss: last?.loss ?? .nan, trainSeconds: totalSeconds)
        end.peakResidentBytes = peak
        end.peakResidentBytesMax = peakMax > 0 ? Int(peakMax) : nil
        end.peakResidentBytesMin = peakMin > 0 ? Int(peakMin) : nil
        end.validationLoss = validation; end.tokensPerSecond = tps
        end.reward = last?.event.reward; end.kl = last?.event.kl
        events?.write(end)
        return TrainingSummary(steps: task.step, finalTrainLoss: last?.loss ?? .nan, finalValidationLoss: validation,
                               tokensPerSecond: tps, seconds: totalSeconds, last: last?.event)
    }
}

public enum TrainingError: Error, CustomStringConvertible {
    case nonFinite(step: Int, loss: Double, gradNorm: Double)
    case stopped(step: Int, checkpoint: String)
    public var description: String {
        switch self {
        case let .stopped(step, dir):
            return "stopped by a signal after step \(step); checkpoint \(dir) written — herd run resumes from it"
        case let .nonFinite(step, loss, norm):
            return "non-finite loss or gradient at step \(step) (loss \(loss), gradient norm \(norm)); lower optimizer.lr or check the data"
        }
    }
}

public func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    if t >= 86400 { return "\(t / 86400)d\(String(format: "%02d", (t % 86400) / 3600))h" }
    if t >= 3600 { return "\(t / 3600)h\(String(format: "%02d", (t % 3600) / 60))m" }
    if t >= 60 { return "\(t / 60)m\(String(format: "%02d", t % 60))s" }
    return "\(t)s"
}
