import Foundation

/// Measurements behind `herd bench`: the machine's sgemm rate, and training
/// throughput of a model shape, both timed in the same process so that the
/// ratio between them is meaningful on a noisy machine.
public enum Throughput {
    /// GFLOP/s of C = A·Bᵀ for square n×n fp32 matrices, best of `repeats`.
    public static func sgemmGFLOPs(n: Int = 1024, repeats: Int = 10) -> Double {
        let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
        var rng = SplitMix64(seed: 1)
        for i in 0..<(n * n) { a[i] = Float(rng.nextUnit()); b[i] = Float(rng.nextUnit()) }
        Matmul.linearForward(y: c.base, x: a.base, w: b.base, rows: n, inFeatures: n, outFeatures: n)
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            Matmul.linearForward(y: c.base, x: a.base, w: b.base, rows: n, inFeatures: n, outFeatures: n)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }

    public struct TrainingRate: Sendable {
        public var tokensPerSecond: Double
        public var gflops: Double
        public var secondsPerStep: Double
    }

    /// Times `steps` full training steps (forward, backward, clip, AdamW) on
    /// random tokens after `warmup` untimed ones; reports the median step.
    public static func training(config: LlamaConfig, batch: Int, seqLen: Int, threads: Int,
                                steps: Int = 20, warmup: Int = 3) throws -> TrainingRate {
        let model = try Llama(config: config)
        model.initialize(seed: 7)
        let sync = GradientSync(model: model, context: .single(model: config, sequences: batch, threads: threads),
                                adamw: AdamWConfig())
        Matmul.threads = threads
        let runner = BatchThreads(model: model, sequences: batch, seqLen: seqLen, threads: threads)
        let n = batch * seqLen
        var rng = SplitMix64(seed: 3)
        let tokens = (0..<n).map { _ in TokenID(rng.next() % UInt64(config.vocabSize)) }
        let targets = (0..<n).map { _ in TokenID(rng.next() % UInt64(config.vocabSize)) }
        var times: [Double] = []
        for i in 0..<(warmup + steps) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            runner.zeroGradients()
            tokens.withUnsafeBufferPointer { t in
                targets.withUnsafeBufferPointer { y in
                    _ = runner.accumulate(tokens: t.baseAddress!, targets: y.baseAddress!, lossScale: 1 / Float(n))
                }
            }
            runner.reduceGradients()
            _ = sync.step(lr: 1e-4, maxNorm: 1, threads: runner.threads)
            if i >= warmup { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
        }
        let median = times.sorted()[times.count / 2]
        let tps = Double(n) / median
        return TrainingRate(tokensPerSecond: tps,
                            gflops: tps * config.trainingFLOPsPerToken(seqLen: seqLen) / 1e9,
                            secondsPerStep: median)
    }
}
