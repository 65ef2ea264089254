import Foundation

/// The corpus of a job, tokenized and split, and the model shape it implies
/// (a char-level vocabulary comes from the corpus). The coordinator loads it
/// to plan; every worker loads it to train.
public struct TrainingData {
    public let tokenizer: any Tokenizer
    public let dataset: any TrainingSource
    public let model: LlamaConfig

    public init(manifest m: JobManifest) throws {
        if m.kind == .reward, let initFrom = m.initFrom {
            let d: ComparisonData
            do { d = try ComparisonData(data: m.data, initFrom: initFrom, reward: m.reward, seed: m.seed) } catch let e as ManifestError { throw e } catch {
                throw ManifestError(file: m.file, field: "data.comparisons", message: "\(error)")
            }
            tokenizer = d.tokenizer
            dataset = d.dataset
            model = try Self.resolve(m, d.tokenizer)
            return
        }
        if m.kind == .sft, let initFrom = m.initFrom {
            let d: DemonstrationData
            do { d = try DemonstrationData(data: m.data, initFrom: initFrom) } catch let e as ManifestError { throw e } catch {
                throw ManifestError(file: m.file, field: "data.demonstrations", message: "\(error)")
            }
            tokenizer = d.tokenizer
            dataset = d.dataset
            model = try Self.resolve(m, d.tokenizer)
            return
        }
        if let shards = m.data.shards {
            let tokPath = (shards as NSString).appendingPathComponent("tokenizer.json")
            guard let data = FileManager.default.contents(atPath: tokPath) else {
                throw ManifestError(file: m.file, field: "data.shards", message: "\(tokPath) is missing (run herd data prepare)")
            }
            tokenizer = try TokenizerFile.load(json: data, path: tokPath)
            do { dataset = try ShardDataset(dir: shards, seqLen: m.data.seqLen, seed: m.seed) } catch {
                throw ManifestError(file: m.file, field: "data.shards", message: "\(error)")
            }
            model = try Self.resolve(m, tokenizer)
            return
        }
        let corpus: Corpus
        do { corpus = try Corpus(path: m.data.corpus) } catch {
            throw ManifestError(file: m.file, field: "data.corpus", message: error.description)
        }
        let tok: any Tokenizer = m.data.tokenizer == "byte" ? ByteTokenizer() : CharTokenizer(corpus: corpus.text)
        tokenizer = tok
        let ids = try tok.encode(corpus.text)
        let d = TokenDataset(tokens: ids, validationFraction: m.data.validationFraction, seqLen: m.data.seqLen)
        guard d.train.count > m.data.seqLen + 1 else {
            throw ManifestError(file: m.file, field: "data.corpus",
                                message: "the training split has \(d.train.count) tokens, fewer than one sequence of data.seq_len + 1 = \(m.data.seqLen + 1)")
        }
        dataset = d
        model = try Self.resolve(m, tok)
    }

    /// The model shape a job trains, without loading its data when the
    /// manifest already holds it (a PPO job's, read from its init).
    public static func modelShape(manifest m: JobManifest) throws -> LlamaConfig {
        if m.kind == .ppo { return m.model.config }
        return try TrainingData(manifest: m).model
    }

    /// The model shape with the tokenizer's vocabulary filled in.
    static func resolve(_ m: JobManifest, _ tok: any Tokenizer) throws -> LlamaConfig {
        var config = m.model.config
        if config.vocabSize == 0 { config.vocabSize = tok.vocabSize }
        guard config.vocabSize >= tok.vocabSize else {
            throw ManifestError(file: m.file, field: "model.vocab_size",
                                message: "must be at least the tokenizer's vocabulary (\(tok.vocabSize)), got \(config.vocabSize)")
        }
        return config
    }
}

/// Pretraining of a manifest on one rank of a process grid (or the whole
/// job in one process): steps of (micro-batches of forward/backward →
/// gradient sync and clip → AdamW), evaluating on the held-out split at
/// intervals and at the end. The data position is the global sequence
/// counter, so every layout trains on the same sequences in the same steps.
public final class Pretrainer {
    public let manifest: JobManifest
    public let tokenizer: any Tokenizer
    public let dataset: any TrainingSource
    public let model: Llama
    public let context: ParallelContext
    let sync: GradientSync
    let runner: BatchThreads
    let tokens: UnsafeMutablePointer<TokenID>
    let targets: UnsafeMutablePointer<TokenID>
    /// Optimizer steps taken so far.
    public private(set) var step = 0

    public var optimizer: AdamW { sync.optimizer }

    public struct StepResult: Sendable {
        public var step: Int
        public var loss: Double
        public var lr: Double
        public var gradNorm: Double
        public var seconds: Double
    }

    /// The whole job in this process.
    public convenience init(manifest m: JobManifest) throws {
        let data = try TrainingData(manifest: m)
        let threads = m.threads ?? ProcessInfo.processInfo.activeProcessorCount
        try self.init(manifest: m, data: data,
                      context: .single(model: data.model, sequences: m.batch.sequences, threads: threads))
    }

    public init(manifest m: JobManifest, data: TrainingData, context: ParallelContext) throws {
        manifest = m
        tokenizer = data.tokenizer
        dataset = data.dataset
        self.context = context
        let config = data.model, shard = context.rank.shard
        // Tensor-parallel ranks communicate inside forward and backward, which
        // only the main thread may do: they split nothing across threads.
        let threads = context.rank.threads
        let batchThreads = shard.size > 1 ? 1 : threads
        // Refuse a job that cannot fit before allocating anything: parameters,
        // gradients and two AdamW moments, a gradient buffer per extra
        // thread, and each thread's activations — for every rank on this machine.
        let split = BatchThreads.threadCount(sequences: m.batch.microBatch, threads: batchThreads, unit: config.scalarHead ? 2 : 1)
        let local = ParameterLayout(config: config, shard: shard).total
        let snapshot = m.checkpoint.interval > 0 && m.checkpoint.async ? 3 : 0   // the async save's copy
        let floats = local * (4 + split - 1 + snapshot)
            + split * Activations.floatCount(config: config, shard: shard, batch: m.batch.microBatch / split, seqLen: m.data.seqLen)
        let needed = Double(floats) * 4 * Double(context.world.size), have = Double(ProcessInfo.processInfo.physicalMemory)
        guard needed < 0.9 * have else {
            throw ManifestError(file: m.file, field: "model",
                                message: String(format: "needs about %.1f GiB on this machine (parameters, gradients, AdamW moments, activations for a micro-batch of %d, on %d rank(s)); it has %.1f GiB — use a smaller model, batch.micro_batch, or more tensor parallelism across nodes",
                                                needed / 1_073_741_824, m.batch.microBatch, context.world.size, have / 1_073_741_824))
        }
        do { model = try Llama(config: config, shard: shard, tensorGroup: context.tensor) } catch {
            throw ManifestError(file: m.file, field: "model.\(error.field)", message: error.message)
        }
        model.initialize(seed: m.seed, std: m.model.initStd)
        sync = GradientSync(model: model, context: context, adamw: m.optimizer.adamw)
        Matmul.threads = threads
        runner = BatchThreads(model: model, sequences: m.batch.microBatch, seqLen: m.data.seqLen, threads: batchThreads)
        runner.separator = (dataset as? DemonstrationDataset)?.separator
        let n = m.batch.microBatch * m.data.seqLen
        tokens = .allocate(capacity: n)
        targets = .allocate(capacity: n)
    }

    deinit {
        tokens.deallocate()
        targets.deallocate()
    }

    public var tokensPerStep: Int { manifest.batch.sequences * manifest.data.seqLen }

    /// One optimizer step over the global batch (this rank's part of it).
    public func trainStep() throws -> StepResult {
        let start = DispatchTime.now().uptimeNanoseconds
        let m = manifest, micro = m.batch.microBatch, T = m.data.seqLen
        let mine = context.rank
        runner.zeroGradients()
        // The mean over the targets that count in the whole global batch
        // (every one in pretraining; the assistant's tokens in SFT).
        var counted = 0
        for i in 0..<m.batch.sequences { counted += dataset.trainTargetCount(seed: m.seed, index: step * m.batch.sequences + i) }
        let scale = Float(1.0 / Double(max(counted, 1)))
        var stats = [0.0, 0.0]   // loss sum, targets counted
        for k in 0..<(mine.sequenceCount / micro) {
            for i in 0..<micro {
                let index = step * m.batch.sequences + mine.firstSequence + k * micro + i
                try dataset.trainWindow(seed: m.seed, index: index, tokens: tokens + i * T, targets: targets + i * T)
            }
            let r = runner.accumulate(tokens: tokens, targets: targets, lossScale: scale)
            stats[0] += r.lossSum
            stats[1] += Double(r.counted)
        }
        runner.reduceGradients()
        let lr = m.schedule.rate(at: step)
        let norm = sync.step(lr: lr, maxNorm: m.optimizer.gradClip, threads: runner.threads)
        context.data.allReduce(&stats, count: 2, op: .sum)
        step += 1
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return StepResult(step: step, loss: stats[0] / max(stats[1], 1), lr: lr, gradNorm: norm, seconds: seconds)
    }

    /// Mean cross-entropy over the held-out split (non-overlapping windows,
    /// up to eval.max_sequences of them), the windows dealt out to the
    /// data-parallel ranks.
    public func evaluate() throws -> Double {
        if let pairs = dataset as? ComparisonDataset {
            let r = try evaluateRewards(pairs)
            rewardAccuracy = r
            return r.loss
        }
        let m = manifest, micro = m.batch.microBatch, T = m.data.seqLen
        var windows = dataset.validationWindows
        if let cap = m.eval.maxSequences { windows = min(windows, cap) }
        let dp = context.data.size, d = context.data.rank
        let mineCount = (windows - d + dp - 1) / dp     // windows d, d + dp, d + 2dp, ...
        var stats = [0.0, 0.0]
        var w = 0
        while w < mineCount {
            let n = min(micro, mineCount - w)
            for i in 0..<micro {
                if i < n {
                    try dataset.validationWindow((w + i) * dp + d, tokens: tokens + i * T, targets: targets + i * T)
                } else { // pad the last micro-batch; the ignore mask drops it
                    (tokens + i * T).update(repeating: 0, count: T)
                    (targets + i * T).update(repeating: CrossEntropy.ignoreIndex, count: T)
                }
            }
            let r = runner.loss(tokens: tokens, targets: targets)
            stats[0] += r.lossSum
            stats[1] += Double(r.counted)
            w += n
        }
        context.data.allReduce(&stats, count: 2, op: .sum)
        return stats[1] > 0 ? stats[0] / stats[1] : .nan
    }

    public struct Summary: Sendable {
        public var steps: Int
        public var finalTrainLoss: Double
        public var finalValidationLoss: Double
        public var tokensPerSecond: Double
        public var seconds: Double
    }

    /// Trains to the manifest's step count. The leader (world rank 0) writes
    /// the run directory and prints a progress line every log_interval
    /// steps; every rank computes. A non-finite loss stops the run with an error.
    public func run(resume: Bool = true, output: (String) -> Void = { print($0) }) throws -> Summary {
        let m = manifest, lead = context.isLeader
        let dir = m.output
        var events: EventLog?
        if lead {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try RunFiles.writeStart(dir: dir, manifest: m, model: model.config, tokenizer: tokenizer)
            events = try EventLog(run: RunDirectory(dir))
            var start = RunEvent(.start)
            start.job = m.name; start.parameters = model.config.parameterCount
            start.steps = m.steps; start.tokensPerStep = tokensPerStep
            start.dataParallel = context.data.size; start.tensorParallel = context.tensor.size; start.zero1 = context.zero1
            start.trainTokens = dataset.trainTokens; start.validationTokens = dataset.validationTokens
            events?.write(start)
            let layout = context.world.size > 1
                ? "\(context.world.size) ranks (data \(context.data.size) × tensor \(context.tensor.size)\(context.zero1 ? ", ZeRO-1" : "")), "
                : ""
            output("\(m.name): \(model.config.parameterCount) parameters, vocab \(model.config.vocabSize), "
                   + "\(dataset.trainTokens) train / \(dataset.validationTokens) held-out tokens, "
                   + "\(m.steps) steps of \(tokensPerStep) tokens, \(layout)\(runner.threads) batch thread(s), BLAS \(Matmul.coreName) × \(Matmul.threads)")
        }
        if resume, let from = try resumePoint(note: { if lead { output("herd: \($0)") } }) {
            let dir = CheckpointStore(runDirectory: dir).path(step: from)
            let loaded = try CheckpointLoader.load(dir: dir, model: model, optimizer: optimizer)
            step = loaded.step
            events?.write(.resumed(step: step, checkpoint: dir, writtenBy: "data \(loaded.data) × tensor \(loaded.tensor)"))
            if lead { output("resumed from \(dir) (written at data \(loaded.data) × tensor \(loaded.tensor)\(loaded.zero1 ? ", ZeRO-1" : ""))") }
        } else if let initFrom = m.initFrom {
            try loadInitialWeights(initFrom)
            events?.write(.initialized(from: initFrom))
            if lead { output("starting from the weights of \(initFrom)") }
        }
        let startStep = step
        var totalSeconds = 0.0, windowSeconds = 0.0, windowSteps = 0
        var last = StepResult(step: 0, loss: .nan, lr: 0, gradNorm: 0, seconds: 0)
        var validation = Double.nan
        while step < m.steps {
            last = try trainStep()
            heartbeat?.progress(step: step, phase: "train")
            guard last.loss.isFinite, last.gradNorm.isFinite else {
                throw TrainingError.nonFinite(step: step, loss: last.loss, gradNorm: last.gradNorm)
            }
            totalSeconds += last.seconds
            windowSeconds += last.seconds
            windowSteps += 1
            if step % m.logInterval == 0 || step == m.steps || step == 1 {
                let tps = Double(windowSteps * tokensPerStep) / windowSeconds
                events?.write(.trainStep(step: step, loss: last.loss, lr: last.lr, gradNorm: last.gradNorm, tokensPerSecond: tps))
                let eta = Double(m.steps - step) * totalSeconds / Double(step - startStep)
                if lead {
                    output(String(format: "step %\(String(m.steps).count)d/%d | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | ETA %@",
                                  step, m.steps, last.loss, last.lr, last.gradNorm, tps, formatDuration(eta)))
                }
                windowSeconds = 0; windowSteps = 0
            }
            func logged(_ saved: CheckpointWriter.Result?) {
                guard let saved else { return }
                events?.write(.checkpointWritten(step: Int(saved.directory.suffix(8)) ?? step, path: saved.directory,
                                                 bytes: saved.bytes, seconds: saved.seconds))
            }
            logged(try checkpointer?.poll())
            defer { heartbeat?.progress(step: step, phase: "step done") }
            // A stop request on any rank stops every rank, after a checkpoint.
            let stopping = context.world.allReduce(StopSignal.isRequested ? 1 : 0, op: .max) > 0
            if stopping {
                logged(try checkpointer?.finish())
                let saved = try CheckpointWriter.save(step: step, sequencesConsumed: step * m.batch.sequences, model: model,
                                                      optimizer: optimizer, context: context, job: m, settings: m.checkpoint)
                logged(saved)
                events?.write(.stoppedAt(step: step, checkpoint: saved.directory))
                throw TrainingError.stopped(step: step, checkpoint: saved.directory)
            }
            if m.checkpoint.interval > 0 && (step % m.checkpoint.interval == 0 || step == m.steps) {
                if let checkpointer {
                    logged(try checkpointer.start(step: step, sequencesConsumed: step * m.batch.sequences))
                } else {
                    logged(try CheckpointWriter.save(step: step, sequencesConsumed: step * m.batch.sequences, model: model,
                                                     optimizer: optimizer, context: context, job: m, settings: m.checkpoint))
                }
            }
            if (m.eval.interval > 0 && step % m.eval.interval == 0) || step == m.steps {
                validation = try evaluate()
                var event = RunEvent.evaluated(step: step, validationLoss: validation)
                var line = String(format: "step %d | held-out loss %.4f", step, validation)
                if let r = rewardAccuracy {
                    r.record(in: &event)
                    line += " | " + r.summary
                }
                events?.write(event)
                if lead { output(line) }
            }
        }
        if let saved = try checkpointer?.finish() {
            events?.write(.checkpointWritten(step: step, path: saved.directory, bytes: saved.bytes, seconds: saved.seconds))
        }
        let tps = Double((m.steps - startStep) * tokensPerStep) / max(totalSeconds, 1e-9)
        var end = RunEvent.ended(step: step, trainLoss: last.loss, trainSeconds: totalSeconds)
        end.validationLoss = validation; end.tokensPerSecond = tps
        events?.write(end)
        return Summary(steps: step, finalTrainLoss: last.loss, finalValidationLoss: validation,
                       tokensPerSecond: tps, seconds: totalSeconds)
    }

    /// The weights a job starts from (SFT from a pretrained model): every
    /// rank cuts its piece from the whole tensors; the optimizer starts fresh.
    /// A reward model starts from a chat model: every weight but its scalar
    /// head, which keeps its initialisation.
    func loadInitialWeights(_ path: String) throws {
        let hf = ModelFiles.isHuggingFace(path)
        var (config, tensors) = hf ? try HuggingFace.load(dir: path) : try ModelFiles.weights(checkpoint: ModelFiles.checkpointDirectory(path))
        var trunk = model.config
        if trunk.scalarHead && !config.scalarHead {
            trunk.scalarHead = false
            let head = model.layout.output, spec = model.layout.specs.first { $0.offset == head }!
            tensors[spec.name] = Array(UnsafeBufferPointer(start: model.params.base + head, count: spec.count))
        }
        guard config == trunk else {
            throw ManifestError(file: manifest.file, field: "init", message: "\(path) holds a model of shape \(config), this job's is \(model.config)")
        }
        try model.setWeights(tensors)
    }

    /// The checkpoint to continue from: `resumeStep` if set, else the newest
    /// complete one (LATEST, or an earlier one that verifies when LATEST is
    /// damaged). Rank 0 decides and tells the others, so all load the same.
    func resumePoint(note: (String) -> Void) throws -> Int? {
        try CheckpointStore(runDirectory: manifest.output).agreedResumeStep(context.world, requested: resumeStep, note: note)
    }

    /// Resume from this step instead of the newest checkpoint.
    public var resumeStep: Int?
    /// Told of every step, evaluation and checkpoint (the coordinator's hang detection).
    public var heartbeat: Heartbeat?
    /// A reward model's latest held-out accuracy (set by `evaluate`).
    public internal(set) var rewardAccuracy: RewardAccuracy?

    /// Background saves, when the manifest checkpoints asynchronously.
    lazy var checkpointer: AsyncCheckpointer? = manifest.checkpoint.interval > 0 && manifest.checkpoint.async
        ? AsyncCheckpointer(model: model, optimizer: optimizer, context: context, job: manifest, settings: manifest.checkpoint)
        : nil

    /// Writes this rank's piece of the weights, raw fp32, to
    /// DIR/weights/rank-NNNNN.f32 (checkpoints proper are their own part).
    public func saveWeights() throws {
        let dir = RunDirectory(manifest.output).weights
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let data = Data(bytes: model.params.base, count: model.layout.total * 4)
        try data.write(to: URL(fileURLWithPath: dir).appendingPathComponent(String(format: "rank-%05d.f32", context.world.rank)),
                       options: .atomic)
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

func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    if t >= 86400 { return "\(t / 86400)d\(String(format: "%02d", (t % 86400) / 3600))h" }
    if t >= 3600 { return "\(t / 3600)h\(String(format: "%02d", (t % 3600) / 60))m" }
    if t >= 60 { return "\(t / 60)m\(String(format: "%02d", t % 60))s" }
    return "\(t)s"
}
