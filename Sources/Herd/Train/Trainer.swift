import Foundation

/// Training of a language model on one rank of a process grid (or the
/// whole job in one process) — pretraining, SFT and reward models alike:
/// steps of (micro-batches of forward/backward → gradient sync and clip →
/// AdamW), evaluating on the held-out split at intervals and at the end.
/// The dataset decides what a window's loss covers (every target, the
/// assistant's tokens, a pair's reward) and what its held-out split
/// measures. The data position is the global sequence counter, so every
/// layout trains on the same sequences in the same steps. The loop around
/// the steps is `TrainingLoop`'s.
public final class Trainer: TrainingTask {
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
        // Tensor-parallel ranks, and ZeRO-2/3 ranks, communicate inside
        // forward and backward, which only the main thread may do: they
        // split nothing across threads (BLAS takes the cores).
        let threads = context.rank.threads
        let batchThreads = shard.size > 1 || context.shardsGradients ? 1 : threads
        // Refuse a job that cannot fit before allocating anything — for every rank on this machine.
        let split = BatchThreads.threadCount(sequences: m.batch.microBatch, threads: batchThreads, unit: config.scalarHead ? 2 : 1)
        let memory = RankMemory.training(config: config, shard: shard, data: context.data.size, zero: context.zero,
                                         microBatch: m.batch.microBatch, seqLen: m.data.seqLen, checkpoint: m.activationCheckpoint,
                                         sequenceParallel: m.parallelism.sequenceParallel, precision: m.precision,
                                         batchThreads: split, asyncCheckpoint: m.checkpoint.interval > 0 && m.checkpoint.async, device: false)
        let needed = memory.total * Double(context.world.size), have = Double(ProcessInfo.processInfo.physicalMemory)
        guard needed < 0.9 * have else {
            throw ManifestError(file: m.file, field: "model",
                                message: String(format: "needs about %.1f GiB on this machine (parameters, gradients, AdamW moments, activations for a micro-batch of %d, on %d rank(s)); it has %.1f GiB — see herd plan's remedies: activation_checkpoint, parallelism.zero, a smaller batch.micro_batch, more tensor parallelism across nodes, or a smaller model",
                                                needed / 1_073_741_824, m.batch.microBatch, context.world.size, have / 1_073_741_824))
        }
        do { model = try Llama(config: config, shard: shard, tensorGroup: context.tensor, zero: context.zero, dataGroup: context.data,
                                  sequenceParallel: m.parallelism.sequenceParallel, precision: m.precision) } catch {
            throw ManifestError(file: m.file, field: "model.\(error.field)", message: error.message)
        }
        model.initialize(seed: m.seed, std: m.model.initStd)
        sync = GradientSync(model: model, context: context, adamw: m.optimizer.adamw)
        Matmul.threads = threads
        runner = BatchThreads(model: model, sequences: m.batch.microBatch, seqLen: m.data.seqLen, threads: batchThreads,
                              checkpoint: m.activationCheckpoint)
        runner.separator = dataset.packingSeparator
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
    public func trainStep() throws -> StepReport {
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
        let loss = stats[0] / max(stats[1], 1)
        return StepReport(step: step, loss: loss, lr: lr, gradNorm: norm, seconds: seconds, tokens: Double(tokensPerStep), finite: true,
                          event: .trainStep(step: step, loss: loss, lr: lr, gradNorm: norm, tokensPerSecond: .nan))
    }

    /// Mean cross-entropy over the held-out split (non-overlapping windows,
    /// up to eval.max_sequences of them), the windows dealt out to the
    /// data-parallel ranks.
    public func heldOutLoss() throws -> Double {
        if case let .ranking(pairs) = dataset.heldOutMeasure {
            let r = try evaluateRewards(pairs)
            rewardAccuracy = r
            return r.loss
        }
        let m = manifest, micro = m.batch.microBatch, T = m.data.seqLen
        // The windows evaluated, in groups: all of them, or each source's of
        // a mixture (eval.max_sequences shared among the sources).
        var groups = [0..<dataset.validationWindows]
        if case let .tokenLossBySource(_, windows, _) = dataset.heldOutMeasure { groups = windows }
        if let cap = m.eval.maxSequences {
            let each = max(cap / groups.count, 1)
            groups = groups.map { $0.lowerBound..<min($0.upperBound, $0.lowerBound + each) }
        }
        let dp = context.data.size, d = context.data.rank
        var stats = [Double](repeating: 0, count: 2 * groups.count)   // [loss sum, counted] per group
        for (k, group) in groups.enumerated() {
            let mine = Array(stride(from: group.lowerBound + d, to: group.upperBound, by: dp))   // this rank's share
            // A ZeRO-3 forward is collective over the data ranks: each runs
            // as many micro-batches as the rank with the largest share.
            let runs = model.shards?.weights == nil ? mine.count : (group.count + dp - 1) / dp
            var w = 0
            while w < runs {
                let n = max(0, min(micro, mine.count - w))
                for i in 0..<micro {
                    if i < n {
                        try dataset.validationWindow(mine[w + i], tokens: tokens + i * T, targets: targets + i * T)
                    } else { // pad the last micro-batch; the ignore mask drops it
                        (tokens + i * T).update(repeating: 0, count: T)
                        (targets + i * T).update(repeating: CrossEntropy.ignoreIndex, count: T)
                    }
                }
                let r = runner.loss(tokens: tokens, targets: targets)
                stats[2 * k] += r.lossSum
                stats[2 * k + 1] += Double(r.counted)
                w += micro
            }
        }
        context.data.allReduce(&stats, count: stats.count, op: .sum)
        func mean(_ sum: Double, _ n: Double) -> Double { n > 0 ? sum / n : .nan }
        sourceLosses = dataset.heldOutMeasure.isBySource ? groups.indices.map { mean(stats[2 * $0], stats[2 * $0 + 1]) } : []
        let total = groups.indices.reduce((0.0, 0.0)) { ($0.0 + stats[2 * $1], $0.1 + stats[2 * $1 + 1]) }
        return mean(total.0, total.1)
    }

    // MARK: the loop's parts

    public var trainedModel: Llama { model }
    public var eventEveryStep: Bool { false }

    public func announce() -> (event: RunEvent, line: String) {
        let m = manifest
        var start = RunEvent(.start)
        start.job = m.name; start.parameters = model.config.parameterCount
        start.steps = m.steps; start.tokensPerStep = tokensPerStep
        start.dataParallel = context.data.size; start.tensorParallel = context.tensor.size; start.zero = context.zero
        start.trainTokens = dataset.trainTokens; start.validationTokens = dataset.validationTokens
        let layout = context.world.size > 1
            ? "\(context.world.size) ranks (data \(context.data.size) × tensor \(context.tensor.size)\(ParallelContext.stageLabel(context.zero))), "
            : ""
        return (start, "\(m.name): \(model.config.parameterCount) parameters, vocab \(model.config.vocabSize), "
                + "\(dataset.trainTokens) train / \(dataset.validationTokens) held-out tokens, "
                + "\(m.steps) steps of \(tokensPerStep) tokens, \(layout)\(runner.threads) batch thread(s), BLAS \(Matmul.coreName) × \(Matmul.threads)")
    }

    public func load(checkpointStep s: Int) throws -> (event: RunEvent, line: String) {
        let dir = CheckpointStore(runDirectory: manifest.output).path(step: s)
        let loaded = try CheckpointLoader.load(dir: dir, model: model, optimizer: optimizer)
        step = loaded.step
        return (.resumed(step: step, checkpoint: dir, writtenBy: "data \(loaded.data) × tensor \(loaded.tensor)"),
                "resumed from \(dir) (written at data \(loaded.data) × tensor \(loaded.tensor)\(ParallelContext.stageLabel(loaded.stage)))")
    }

    public func begin() throws -> (event: RunEvent, line: String?)? {
        guard let initFrom = manifest.initFrom else { return nil }
        try loadInitialWeights(initFrom)
        return (.initialized(from: initFrom), "starting from the weights of \(initFrom)")
    }

    public func save() throws -> CheckpointWriter.Result {
        try CheckpointWriter.save(step: step, sequencesConsumed: step * manifest.batch.sequences, model: model,
                                  optimizer: optimizer, context: context, job: manifest, settings: manifest.checkpoint)
    }

    public func evaluate() throws -> (event: RunEvent, line: String, loss: Double)? {
        // A prepared dataset of a single document has no held-out split.
        guard dataset.validationWindows > 0 else { return nil }
        let loss = try heldOutLoss()
        var event = RunEvent.evaluated(step: step, validationLoss: loss)
        var line = String(format: "step %d | held-out loss %.4f", step, loss)
        if let r = rewardAccuracy {
            r.record(in: &event)
            line += " | " + r.summary
        }
        if case let .tokenLossBySource(names, _, schedule) = dataset.heldOutMeasure {
            let shares = schedule.realisedProportions(upTo: step * manifest.batch.sequences)
            event.sourceLosses = Dictionary(uniqueKeysWithValues: zip(names, sourceLosses))
            event.mixProportions = Dictionary(uniqueKeysWithValues: zip(names, shares))
            line += " | by source: " + names.indices.map { String(format: "%@ %.4f (%.1f%% of sequences)", names[$0], sourceLosses[$0], 100 * shares[$0]) }.joined(separator: ", ")
        }
        return (event, line, loss)
    }

    public func progressLine(_ r: StepReport, tokensPerSecond: Double, eta: Double) -> String {
        String(format: "step %\(String(manifest.steps).count)d/%d | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | ETA %@",
               r.step, manifest.steps, r.loss, r.lr, r.gradNorm, tokensPerSecond, formatDuration(eta))
    }

    /// Trains to the manifest's step count (see TrainingLoop).
    public func run(resume: Bool = true, resumeStep: Int? = nil, output: (String) -> Void = { print($0) }) throws -> TrainingSummary {
        try TrainingLoop(self, resumeStep: resumeStep).run(resume: resume, output: output)
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
            model.shards?.gatherIntoParams([model.config.layers + 1])
            tensors[spec.name] = Array(UnsafeBufferPointer(start: model.params.base + head, count: spec.count))
        }
        guard config == trunk else {
            throw ManifestError(file: manifest.file, field: "init", message: "\(path) holds a model of shape \(config), this job's is \(model.config)")
        }
        try model.setWeights(tensors)
    }

    /// Told of every step, evaluation and checkpoint (the coordinator's hang detection).
    public var heartbeat: Heartbeat?
    /// A mixture's latest held-out loss per source (set by `heldOutLoss`).
    public internal(set) var sourceLosses: [Double] = []
    /// A reward model's latest held-out accuracy (set by `evaluate`).
    public internal(set) var rewardAccuracy: RewardAccuracy?

    /// Background saves, when the manifest checkpoints asynchronously.
    public lazy var asyncCheckpointer: AsyncCheckpointer? = manifest.checkpoint.interval > 0 && manifest.checkpoint.async
        ? AsyncCheckpointer(model: model, optimizer: optimizer, context: context, job: manifest, settings: manifest.checkpoint)
        : nil
}
