import Foundation

/// Single-process pretraining of a manifest: tokenizes the corpus, builds the
/// model, and runs steps of (micro-batches of forward/backward → clip →
/// AdamW), evaluating on the held-out split at intervals and at the end.
public final class Pretrainer {
    public let manifest: JobManifest
    public let tokenizer: any Tokenizer
    public let dataset: TokenDataset
    public let model: Llama
    public let optimizer: AdamW
    let runner: BatchThreads
    let tokens: UnsafeMutablePointer<TokenID>
    let targets: UnsafeMutablePointer<TokenID>
    /// Optimizer steps taken so far.
    public private(set) var step = 0

    public struct StepResult: Sendable {
        public var step: Int
        public var loss: Double
        public var lr: Double
        public var gradNorm: Double
        public var seconds: Double
    }

    public init(manifest m: JobManifest) throws {
        manifest = m
        let corpus: Corpus
        do { corpus = try Corpus(path: m.data.corpus) } catch {
            throw ManifestError(file: m.file, field: "data.corpus", message: error.description)
        }
        let tok: any Tokenizer = m.data.tokenizer == "byte" ? ByteTokenizer() : CharTokenizer(corpus: corpus.text)
        tokenizer = tok
        let ids = try tok.encode(corpus.text)
        dataset = TokenDataset(tokens: ids, validationFraction: m.data.validationFraction, seqLen: m.data.seqLen)
        guard dataset.train.count > m.data.seqLen + 1 else {
            throw ManifestError(file: m.file, field: "data.corpus",
                                message: "the training split has \(dataset.train.count) tokens, fewer than one sequence of data.seq_len + 1 = \(m.data.seqLen + 1)")
        }
        var config = m.model.config
        if config.vocabSize == 0 { config.vocabSize = tok.vocabSize }
        guard config.vocabSize >= tok.vocabSize else {
            throw ManifestError(file: m.file, field: "model.vocab_size",
                                message: "must be at least the tokenizer's vocabulary (\(tok.vocabSize)), got \(config.vocabSize)")
        }
        // Refuse a job that cannot fit before allocating anything: parameters,
        // gradients and two AdamW moments, a gradient buffer per extra
        // thread, and each thread's activations.
        let threads = m.threads ?? ProcessInfo.processInfo.activeProcessorCount
        let split = BatchThreads.threadCount(sequences: m.batch.microBatch, threads: threads)
        let floats = config.parameterCount * (4 + split - 1)
            + split * Activations.floatCount(config: config, batch: m.batch.microBatch / split, seqLen: m.data.seqLen)
        let needed = Double(floats) * 4, have = Double(ProcessInfo.processInfo.physicalMemory)
        guard needed < 0.9 * have else {
            throw ManifestError(file: m.file, field: "model",
                                message: String(format: "needs about %.1f GiB in one process (parameters, gradients, AdamW moments, activations for a micro-batch of %d); this machine has %.1f GiB — use a smaller model or batch.micro_batch",
                                                needed / 1_073_741_824, m.batch.microBatch, have / 1_073_741_824))
        }
        do { model = try Llama(config: config) } catch {
            throw ManifestError(file: m.file, field: "model.\(error.field)", message: error.message)
        }
        model.initialize(seed: m.seed, std: m.model.initStd)
        optimizer = AdamW(config: m.optimizer.adamw, layout: model.layout)
        Matmul.threads = threads
        runner = BatchThreads(model: model, sequences: m.batch.microBatch, seqLen: m.data.seqLen, threads: threads)
        let n = m.batch.microBatch * m.data.seqLen
        tokens = .allocate(capacity: n)
        targets = .allocate(capacity: n)
    }

    deinit {
        tokens.deallocate()
        targets.deallocate()
    }

    public var tokensPerStep: Int { manifest.batch.sequences * manifest.data.seqLen }

    /// One optimizer step over the global batch.
    public func trainStep() -> StepResult {
        let start = DispatchTime.now().uptimeNanoseconds
        let m = manifest, micro = m.batch.microBatch, T = m.data.seqLen
        runner.zeroGradients()
        let scale = Float(1.0 / Double(m.batch.sequences * T))
        var lossSum = 0.0, counted = 0
        for k in 0..<(m.batch.sequences / micro) {
            for i in 0..<micro {
                let index = step * m.batch.sequences + k * micro + i
                dataset.trainWindow(seed: m.seed, index: index, tokens: tokens + i * T, targets: targets + i * T)
            }
            let r = runner.accumulate(tokens: tokens, targets: targets, lossScale: scale)
            lossSum += r.lossSum
            counted += r.counted
        }
        runner.reduceGradients()
        let norm = GradClip.clip(model.grads, maxNorm: m.optimizer.gradClip)
        let lr = m.schedule.rate(at: step)
        optimizer.update(params: model.params, grads: model.grads, lr: lr, threads: runner.threads)
        step += 1
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return StepResult(step: step, loss: lossSum / Double(max(counted, 1)), lr: lr, gradNorm: norm, seconds: seconds)
    }

    /// Mean cross-entropy over the held-out split (non-overlapping windows,
    /// up to eval.max_sequences of them).
    public func evaluate() -> Double {
        let m = manifest, micro = m.batch.microBatch, T = m.data.seqLen
        var windows = dataset.validationWindows
        if let cap = m.eval.maxSequences { windows = min(windows, cap) }
        var lossSum = 0.0, counted = 0
        var w = 0
        while w < windows {
            let n = min(micro, windows - w)
            for i in 0..<micro {
                if i < n {
                    dataset.validationWindow(w + i, tokens: tokens + i * T, targets: targets + i * T)
                } else { // pad the last micro-batch; the ignore mask drops it
                    (tokens + i * T).update(repeating: 0, count: T)
                    (targets + i * T).update(repeating: CrossEntropy.ignoreIndex, count: T)
                }
            }
            let r = runner.loss(tokens: tokens, targets: targets)
            lossSum += r.lossSum
            counted += r.counted
            w += n
        }
        return counted > 0 ? lossSum / Double(counted) : .nan
    }

    public struct Summary: Sendable {
        public var steps: Int
        public var finalTrainLoss: Double
        public var finalValidationLoss: Double
        public var tokensPerSecond: Double
        public var seconds: Double
    }

    /// Trains to the manifest's step count, writing the run directory and
    /// printing a progress line every log_interval steps.
    public func run(output: (String) -> Void = { print($0) }) throws -> Summary {
        let m = manifest
        let dir = m.output
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try RunFiles.writeStart(dir: dir, manifest: m, model: model.config, tokenizer: tokenizer)
        let events = try EventLog(path: (dir as NSString).appendingPathComponent("events.jsonl"))
        events.write("start", ["job": m.name, "parameters": model.config.parameterCount,
                               "steps": m.steps, "tokens_per_step": tokensPerStep,
                               "train_tokens": dataset.train.count, "validation_tokens": dataset.validation.count])
        output("\(m.name): \(model.config.parameterCount) parameters, vocab \(model.config.vocabSize), "
               + "\(dataset.train.count) train / \(dataset.validation.count) held-out tokens, "
               + "\(m.steps) steps of \(tokensPerStep) tokens, \(runner.threads) batch thread(s), BLAS \(Matmul.coreName) × \(Matmul.threads)")
        var totalSeconds = 0.0, windowSeconds = 0.0, windowSteps = 0
        var last = StepResult(step: 0, loss: .nan, lr: 0, gradNorm: 0, seconds: 0)
        var validation = Double.nan
        while step < m.steps {
            last = trainStep()
            totalSeconds += last.seconds
            windowSeconds += last.seconds
            windowSteps += 1
            if step % m.logInterval == 0 || step == m.steps || step == 1 {
                let tps = Double(windowSteps * tokensPerStep) / windowSeconds
                events.write("step", ["step": step, "loss": last.loss, "lr": last.lr,
                                      "grad_norm": last.gradNorm, "tokens_per_s": tps])
                let eta = Double(m.steps - step) * totalSeconds / Double(step)
                output(String(format: "step %\(String(m.steps).count)d/%d | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | ETA %@",
                              step, m.steps, last.loss, last.lr, last.gradNorm, tps, formatDuration(eta)))
                windowSeconds = 0; windowSteps = 0
            }
            if (m.eval.interval > 0 && step % m.eval.interval == 0) || step == m.steps {
                validation = evaluate()
                events.write("eval", ["step": step, "val_loss": validation])
                output(String(format: "step %d | held-out loss %.4f", step, validation))
            }
        }
        let tps = Double(m.steps * tokensPerStep) / max(totalSeconds, 1e-9)
        events.write("end", ["step": step, "train_loss": last.loss, "val_loss": validation,
                             "tokens_per_s": tps, "train_seconds": totalSeconds])
        return Summary(steps: step, finalTrainLoss: last.loss, finalValidationLoss: validation,
                       tokensPerSecond: tps, seconds: totalSeconds)
    }
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    if t >= 3600 { return "\(t / 3600)h\(String(format: "%02d", (t % 3600) / 60))m" }
    if t >= 60 { return "\(t / 60)m\(String(format: "%02d", t % 60))s" }
    return "\(t)s"
}
