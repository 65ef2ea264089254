import XCTest
import Herd

/// Generation's kernels (Sources/CKernels), built for every instruction set
/// this CPU runs, against a sum in double precision and against the
/// OpenBLAS and Swift path they replace.
final class DecodeKernelTests: XCTestCase {
    var blasThreads = 1
    var chosen: DecodeKernels.InstructionSet?

    override func setUpWithError() throws {
        try XCTSkipIf(DecodeKernels.available.isEmpty, "this CPU has neither AVX2 nor AVX-512: generation runs on OpenBLAS and the Swift loops")
        blasThreads = Matmul.threads
        chosen = DecodeKernels.instructionSet
        Matmul.threads = 3   // the kernels take at most the process's share; let them have three parts
    }

    override func tearDown() {
        DecodeKernels.instructionSet = chosen
        Matmul.threads = blasThreads
    }

    /// Runs `body` with each instruction set this CPU has chosen in turn.
    func eachSet(_ body: (DecodeKernels.InstructionSet) throws -> Void) rethrows {
        for isa in DecodeKernels.available {
            DecodeKernels.instructionSet = isa
            try body(isa)
        }
    }

    func testLinearKernelAgainstADoublePrecisionSum() { eachSet { isa in
        var rng = SplitMix64(seed: 3)
        // One row (the dot-product path) and several (the broadcast path), with
        // every tail: widths that are not multiples of 16, outputs not of 6.
        let shapes = [(1, 288, 37), (1, 5, 3), (1, 17, 1000), (2, 16, 6), (17, 33, 13), (33, 288, 100), (70, 17, 7), (64, 288, 864)]
        for (rows, inF, outF) in shapes {
            let x = (0..<(rows * inF)).map { _ in Float(rng.nextUnit() * 2 - 1) }
            let w = (0..<(outF * inF)).map { _ in Float(rng.nextUnit() * 2 - 1) }
            let start = (0..<(rows * outF)).map { _ in Float(rng.nextUnit()) }
            var byThreads: [[Float]] = []
            for threads in [1, 2, 3] {
                for accumulate in [false, true] {
                    var y = start
                    DecodeKernels.linear(y: &y, x: x, w: w, rows: rows, inFeatures: inF, outFeatures: outF,
                                         accumulate: accumulate, threads: threads)
                    for r in 0..<rows {
                        for n in 0..<outF {
                            var sum = accumulate ? Double(start[r * outF + n]) : 0, size = abs(sum)
                            for k in 0..<inF {
                                sum += Double(x[r * inF + k]) * Double(w[n * inF + k])
                                size += abs(Double(x[r * inF + k]) * Double(w[n * inF + k]))
                            }
                            XCTAssertLessThan(abs(Double(y[r * outF + n]) - sum), 1e-6 * size + 1e-30,
                                              "\(isa): rows \(rows) in \(inF) out \(outF) threads \(threads) accumulate \(accumulate): [\(r), \(n)]")
                        }
                    }
                    if !accumulate { byThreads.append(y) }
                }
            }
            // Each output is summed the same way whichever thread computes it.
            XCTAssertEqual(byThreads[0], byThreads[1], "\(isa): 1 and 2 threads, shape \(rows)×\(inF)×\(outF)")
            XCTAssertEqual(byThreads[0], byThreads[2], "\(isa): 1 and 3 threads, shape \(rows)×\(inF)×\(outF)")
        }
    } }

    /// Callers on several threads at once (two generators in one process):
    /// the pool serves one and the others run on their own thread, each
    /// with the single caller's numbers.
    func testConcurrentCallersGetTheirOwnResults() { eachSet { isa in
        let rows = 20, inF = 100, outF = 120   // enough work for two parts (CKernels/linear.c)
        var rng = SplitMix64(seed: 8)
        let w = (0..<(outF * inF)).map { _ in Float(rng.nextUnit() - 0.5) }
        let xs = (0..<8).map { _ in (0..<(rows * inF)).map { _ in Float(rng.nextUnit() - 0.5) } }
        let alone: [[Float]] = xs.map { x in
            var y = [Float](repeating: 0, count: rows * outF)
            DecodeKernels.linear(y: &y, x: x, w: w, rows: rows, inFeatures: inF, outFeatures: outF, threads: 2)
            return y
        }
        let together = UnsafeMutablePointer<Float>.allocate(capacity: xs.count * rows * outF)
        defer { together.deallocate() }
        for _ in 0..<20 {
            DispatchQueue.concurrentPerform(iterations: xs.count) { i in
                DecodeKernels.linear(y: together + i * rows * outF, x: xs[i], w: w, rows: rows, inFeatures: inF,
                                     outFeatures: outF, threads: 2)
            }
            for i in xs.indices {
                XCTAssertEqual(Array(UnsafeBufferPointer(start: together + i * rows * outF, count: rows * outF)), alone[i], "\(isa): caller \(i)")
            }
        }
    } }

    /// Head widths of 6, 48, 100 and 128, with grouped-query attention, and
    /// positions past 16 and 32 (the scores' blocks of sixteen keys and their
    /// tails): the kernels' logits within 1e-5 of OpenBLAS's and the Swift loops'.
    func testKernelsGiveTheLogitsOfTheBLASPath() throws {
        let shapes = [LlamaConfig(dim: 48, layers: 2, heads: 8, kvHeads: 2, ffnDim: 64, vocabSize: 50, maxSeqLen: 48),
                      LlamaConfig(dim: 96, layers: 1, heads: 2, kvHeads: 2, ffnDim: 128, vocabSize: 61, maxSeqLen: 48),
                      LlamaConfig(dim: 200, layers: 1, heads: 2, kvHeads: 1, ffnDim: 96, vocabSize: 33, maxSeqLen: 48),
                      LlamaConfig(dim: 256, layers: 1, heads: 2, kvHeads: 2, ffnDim: 96, vocabSize: 40, maxSeqLen: 48)]
        for config in shapes {
            let model = try Llama(config: config)
            model.initialize(seed: 11, std: 0.2)
            let tokens = (0..<40).map { TokenID(($0 * 7 + 3) % config.vocabSize) }
            func logits(_ isa: DecodeKernels.InstructionSet?, threads: Int) -> [[Float]] {
                DecodeKernels.instructionSet = isa
                return Generator(model: model, batch: 1, threads: threads).logits(for: tokens)
            }
            let blas = logits(nil, threads: 1)
            for isa in DecodeKernels.available {
                for threads in [1, 2] {
                    let mine = logits(isa, threads: threads)
                    for t in tokens.indices {
                        XCTAssertLessThan(GradientCheck.relativeError(mine[t].map(Double.init), blas[t].map(Double.init)), 1e-5,
                                          "\(isa): head width \(config.headDim), position \(t), \(threads) threads")
                    }
                }
            }
        }
    }

    /// Batched decoding (the several-rows kernel, 13 sequences, prompts of
    /// different lengths prefilled as products): every greedy token is the
    /// argmax, up to a near tie, of the one-sequence logits of what precedes it.
    func testBatchedGreedyTokensAreTheArgmaxOfTheirPrefix() throws { try eachSet { isa in
        let config = LlamaConfig(dim: 64, layers: 2, heads: 4, kvHeads: 2, ffnDim: 96, vocabSize: 97, maxSeqLen: 64)
        let model = try Llama(config: config)
        model.initialize(seed: 5, std: 0.2)
        let prompts = (0..<13).map { p in (0...(p % 5)).map { TokenID((p * 13 + $0 * 5) % 97) } }
        let out = Generator(model: model, batch: 8, threads: 2).generate(prompts, options: .init(temperature: 0, maxNewTokens: 20))
        for (p, answer) in zip(prompts, out) {
            XCTAssertEqual(answer.count, 20)
            let logits = Generator(model: model, batch: 1).logits(for: p + answer.dropLast())
            for (i, token) in answer.enumerated() {
                let row = logits[p.count - 1 + i], best = row.max()!
                XCTAssertGreaterThanOrEqual(row[Int(token)], best - 1e-4 * max(1, abs(best)), "\(isa): prompt \(p), token \(i)")
            }
        }
    } }
}
