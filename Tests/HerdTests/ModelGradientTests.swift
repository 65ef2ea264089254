import XCTest
import Herd

/// The whole model's gradient against finite differences, and the threaded
/// batch split against one thread.
final class ModelGradientTests: XCTestCase {
    func tinyModel(vocab: Int = 11, seed: UInt64 = 3, std: Double = 0.2, scalarHead: Bool = false,
                   precision: Precision = .fp32) throws -> Llama {
        var c = LlamaConfig.presets["tiny-gqa"]!
        c.vocabSize = vocab
        c.scalarHead = scalarHead
        let m = try Llama(config: c, precision: precision)
        m.initialize(seed: seed, std: std)
        // Gains away from 1 so that their gradients are exercised in general position.
        var r = SplitMix64(seed: 99)
        for spec in m.layout.specs where spec.shape.count == 1 {
            for i in 0..<spec.count { m.params[spec.offset + i] = Float(1 + 0.3 * r.nextNormal()) }
        }
        return m
    }

    func batch(_ n: Int, vocab: Int, seed: UInt64, ignoreEvery: Int = 0) -> ([TokenID], [TokenID]) {
        var r = SplitMix64(seed: seed)
        let tokens = (0..<n).map { _ in TokenID(r.next() % UInt64(vocab)) }
        var targets = (0..<n).map { _ in TokenID(r.next() % UInt64(vocab)) }
        if ignoreEvery > 0 { for i in stride(from: 0, to: n, by: ignoreEvery) { targets[i] = CrossEntropy.ignoreIndex } }
        return (tokens, targets)
    }

    func testWholeModelGradientWithGQA() throws { try wholeModelGradient(separator: nil) }

    /// Selective and full recomputation hold fewer floats than keeping every
    /// activation (what the planner counts is what is allocated) and give
    /// the loss and every gradient of `none`, bit for bit — with packed
    /// segments too.
    /// In fp32 and in bf16 (whose kept activations are stored in 16 bits and
    /// widened again).
    func testRecomputationGivesTheSameGradientsBitForBit() throws {
        for precision in Precision.allCases { try recomputation(precision) }
    }

    func recomputation(_ precision: Precision) throws {
        let model = try tinyModel(precision: precision)
        let B = 2, T = 6
        var (tokens, targets) = batch(B * T, vocab: 11, seed: 8, ignoreEvery: 5)
        tokens[3] = 3
        for separator: TokenID? in [nil, 3] {
            var results: [ActivationCheckpoint: (Double, [Float])] = [:], floats: [ActivationCheckpoint: Int] = [:]
            for mode in ActivationCheckpoint.allCases {
                let acts = model.makeActivations(batch: B, seqLen: T, checkpoint: mode)
                acts.separator = separator
                XCTAssertEqual(acts.allocatedFloats, Activations.floatCount(config: model.config, batch: B, seqLen: T, checkpoint: mode,
                                                                            precision: precision))
                floats[mode] = acts.allocatedFloats
                model.zeroGradients()
                let r = model.forwardBackward(tokens: tokens, targets: targets, acts: acts, lossScale: 0.1)
                results[mode] = (r.lossSum, model.grads.array)
            }
            for mode in [ActivationCheckpoint.selective, .full] {
                XCTAssertEqual(results[mode]!.0, results[.none]!.0, "\(precision) \(mode): loss")
                XCTAssertEqual(results[mode]!.1, results[.none]!.1, "\(precision) \(mode): gradients")
            }
            XCTAssertLessThan(floats[.full]!, floats[.selective]!)
            XCTAssertLessThan(floats[.selective]!, floats[.none]!)
        }
        guard precision == .bf16 else { return }
        // bf16 computes something close to fp32, not the same thing, and keeps less.
        let fp32 = try tinyModel()
        let a = fp32.makeActivations(batch: B, seqLen: T), b = model.makeActivations(batch: B, seqLen: T)
        let exact = fp32.loss(tokens: tokens, targets: targets, acts: a).lossSum, rounded = model.loss(tokens: tokens, targets: targets, acts: b).lossSum
        XCTAssertNotEqual(exact, rounded)
        XCTAssertEqual(rounded / exact, 1, accuracy: 0.01)
        // A layer's 16-bit copies cost half, plus one fp32 working copy: less
        // than fp32 from three layers on (this model has two).
        var deep = model.config
        deep.layers = 8
        XCTAssertLessThan(Activations.floatCount(config: deep, batch: B, seqLen: T, precision: .bf16),
                          Activations.floatCount(config: deep, batch: B, seqLen: T))
    }

    /// The same with packed segments: token 3 starts a segment that attends
    /// only within itself.
    func testWholeModelGradientWithPackedSegments() throws {
        try wholeModelGradient(separator: 3, plant: [(0, 3), (1, 2)])
    }

    func wholeModelGradient(separator: TokenID?, plant: [(Int, Int)] = []) throws {
        let model = try tinyModel()
        XCTAssertEqual(model.config.heads, 4)
        XCTAssertEqual(model.config.kvHeads, 2)
        let B = 2, T = 6
        let acts = Activations(config: model.config, batch: B, seqLen: T)
        acts.separator = separator
        var (tokens, targets) = batch(B * T, vocab: 11, seed: 5, ignoreEvery: 5)
        for (b, t) in plant { tokens[b * T + t] = separator! }
        let counted = targets.filter { $0 >= 0 }.count
        model.zeroGradients()
        let r = model.forwardBackward(tokens: tokens, targets: targets, acts: acts, lossScale: 1 / Float(counted))
        XCTAssertEqual(r.counted, counted)
        let analytic = model.grads.array
        func f() -> Double {
            let (s, n) = model.loss(tokens: tokens, targets: targets, acts: acts)
            return s / Double(n)
        }
        // Every parameter, tensor by tensor, so a failure names the tensor.
        // In fp32 the step must sit between rounding noise (which wins below
        // h ≈ 1e-3 here) and truncation (the embedding rows, normalised by
        // RMSNorm, have large curvature: it wins above h ≈ 1e-2).
        let check = GradientCheck(h: 3e-3, tolerance: 1e-3)
        for spec in model.layout.specs {
            let idx = Array(spec.offset..<(spec.offset + spec.count))
            check.check(spec.name, analytic: analytic, buffer: model.params.base, indices: idx, objective: f)
        }
    }

    /// A reward model: the scalar head and the whole trunk under the margin
    /// ranking loss of two pairs (margins 2/3 and 3), against finite differences.
    func testRewardModelGradient() throws {
        let model = try tinyModel(scalarHead: true)
        XCTAssertEqual(model.layout.specs.last?.name, "reward_head.weight")
        XCTAssertEqual(model.layout.specs.last?.shape, [1, 32])
        let B = 4, T = 6
        let acts = Activations(config: model.config, batch: B, seqLen: T)
        let tokens = batch(B * T, vocab: 11, seed: 8).0
        var targets = [TokenID](repeating: CrossEntropy.ignoreIndex, count: B * T)
        targets[0 * T + 5] = 667; targets[1 * T + 4] = 0     // pair 0: chosen read at row 5, rejected at row 4
        targets[2 * T + 5] = 3000; targets[3 * T + 3] = 0    // pair 1: margin 3
        model.zeroGradients()
        let r = model.forwardBackward(tokens: tokens, targets: targets, acts: acts, lossScale: 0.5)
        XCTAssertEqual(r.counted, 2)
        let analytic = model.grads.array
        func f() -> Double { model.loss(tokens: tokens, targets: targets, acts: acts).lossSum / 2 }
        let check = GradientCheck(h: 3e-3, tolerance: 1e-3)
        for spec in model.layout.specs {
            let idx = Array(spec.offset..<(spec.offset + spec.count))
            check.check(spec.name, analytic: analytic, buffer: model.params.base, indices: idx, objective: f)
        }
    }

    func testThreadedBatchMatchesOneThread() throws {
        let B = 4, T = 8
        let (tokens, targets) = batch(B * T, vocab: 13, seed: 8, ignoreEvery: 7)
        var results: [(Double, [Float])] = []
        for threads in [1, 2, 4] {
            let model = try tinyModel(vocab: 13, seed: 4, std: 0.02)
            let runner = BatchThreads(model: model, sequences: B, seqLen: T, threads: threads)
            XCTAssertEqual(runner.threads, threads)
            runner.zeroGradients()
            let r = runner.accumulate(tokens: tokens, targets: targets, lossScale: 1)
            runner.reduceGradients()
            results.append((r.lossSum, model.grads.array))
        }
        for (loss, grads) in results.dropFirst() {
            XCTAssertEqual(loss, results[0].0, accuracy: 1e-5 * abs(results[0].0))
            XCTAssertLessThan(GradientCheck.relativeError(grads.map(Double.init), results[0].1.map(Double.init)), 1e-6)
        }
    }

    func testMicroBatchesSumToTheFullBatch() throws {
        // Two micro-batches of 2 accumulate the same gradient as one of 4.
        let B = 4, T = 8, n = B * T
        let (tokens, targets) = batch(n, vocab: 13, seed: 9)
        let one = try tinyModel(vocab: 13, std: 0.02), two = try tinyModel(vocab: 13, std: 0.02)
        one.zeroGradients(); two.zeroGradients()
        one.forwardBackward(tokens: tokens, targets: targets, acts: Activations(config: one.config, batch: B, seqLen: T),
                            lossScale: 1 / Float(n))
        let half = Activations(config: two.config, batch: B / 2, seqLen: T)
        for k in 0..<2 {
            tokens.withUnsafeBufferPointer { t in
                targets.withUnsafeBufferPointer { y in
                    _ = two.forwardBackward(tokens: t.baseAddress! + k * n / 2, targets: y.baseAddress! + k * n / 2,
                                            acts: half, lossScale: 1 / Float(n))
                }
            }
        }
        XCTAssertLessThan(GradientCheck.relativeError(one.grads.array.map(Double.init), two.grads.array.map(Double.init)), 1e-6)
    }
}
