import XCTest
import Foundation
import Herd

/// Rejection sampling: the bag does not depend on batching, a stopped run
/// continues inside its bag, the combined reward is the paper's, and the
/// Figure 7 maximum grows with K.
final class RejectionSamplingTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-rs-\(getpid())"

    override class func setUp() {
        prepare {
            try HerdBinary.pretrainTinyPolicy(dir: dir, output: dir + "/policy")
            try HerdBinary.tinyRewardModelAndPrompts(dir: dir, prompts: 6)
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func step(_ bag: String, chunk: Int) -> RejectionSampling {
        var s = RejectionSampling(policy: Self.dir + "/policy", helpfulness: Self.dir + "/rm", safety: Self.dir + "/rm",
                                  prompts: Self.dir + "/prompts.jsonl", bag: Self.dir + "/" + bag, iteration: "V1")
        s.k = 4
        s.maxNewTokens = 12
        s.chunk = chunk
        return s
    }

    func testTheBagDoesNotDependOnBatchingAndContinuesWhereItStopped() throws {
        let whole = try step("a.jsonl", chunk: 6).run()
        XCTAssertEqual(whole.count, 24)
        let chunked = try step("b.jsonl", chunk: 1).run()
        XCTAssertEqual(chunked.map(\.text), whole.map(\.text), "the same samples in batches of one prompt")
        for (a, b) in zip(chunked, whole) { XCTAssertEqual(a.reward, b.reward, accuracy: 1e-5) }
        // A run stopped after two prompts continues inside its bag.
        let path = Self.dir + "/c.jsonl"
        let lines = try String(contentsOfFile: Self.dir + "/b.jsonl", encoding: .utf8).split(separator: "\n")
        try (lines.prefix(8).joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        var logged: [String] = []
        let resumed = try step("c.jsonl", chunk: 2).run { logged.append($0) }
        XCTAssertTrue(logged.first?.contains("2 already sampled") == true, "\(logged)")
        XCTAssertEqual(resumed.map(\.text), whole.map(\.text))
        XCTAssertEqual(try JSONLines.read(SampleRecord.self, path: path).count, 24)
    }

    /// mpirun ranks share the prompts chunk by chunk; the bag is byte for byte the one process's.
    func testOneAndTwoMPIRanksWriteTheSameBag() throws {
        func sample(_ ranks: Int) throws -> Data? {
            let bag = Self.dir + "/ranks-\(ranks).jsonl"
            let r = try HerdBinary.run(["rlhf", "sample", "--policy", Self.dir + "/policy", "--helpfulness", Self.dir + "/rm", "--safety", Self.dir + "/rm",
                                        "--prompts", Self.dir + "/prompts.jsonl", "--bag", bag, "--iteration", "V1", "--k", "4",
                                        "--max-new-tokens", "12", "--chunk", "2", "--ranks", String(ranks)])
            XCTAssertEqual(r.status, 0, r.out + r.err)
            XCTAssertTrue(r.out.contains("K =   4"), r.out)
            return FileManager.default.contents(atPath: bag)
        }
        let one = try sample(1), two = try sample(2)
        XCTAssertNotNil(one)
        XCTAssertEqual(one, two)
        XCTAssertFalse(FileManager.default.fileExists(atPath: Self.dir + "/ranks-2.jsonl.part-1"), "the parts are merged and removed")
    }

    /// Tensor-parallel generation: `herd generate` with the model split over
    /// 2 ranks continues prompts token for token as one process does, greedy
    /// and sampled (the same streams); and a bag written by one group of 2
    /// tensor ranks, and by 2 groups of 2, holds the same answers as one
    /// process's, with the same rewards up to the last bits of the split sums.
    func testTensorParallelGenerationAndBagEqualOneRank() throws {
        func generate(_ tensor: Int, temperature: String) throws -> String {
            let r = try HerdBinary.run(["generate", "--model", Self.dir + "/policy", "--prompt-ids", "10 20 30 40", "--samples", "6",
                                        "--temperature", temperature, "--seed", "7", "--max-new-tokens", "20", "--ids", "--tensor", String(tensor)])
            XCTAssertEqual(r.status, 0, r.out + r.err)
            return r.out
        }
        for t in ["0", "1.0"] {
            let one = try generate(1, temperature: t)
            XCTAssertEqual(one.split(separator: "\n").count, 6, one)
            XCTAssertEqual(try generate(2, temperature: t), one, "temperature \(t)")
        }
        func bag(ranks: Int, tensor: Int) throws -> [SampleRecord] {
            let bag = Self.dir + "/tensor-\(ranks)-\(tensor).jsonl"
            let r = try HerdBinary.run(["rlhf", "sample", "--policy", Self.dir + "/policy", "--helpfulness", Self.dir + "/rm", "--safety", Self.dir + "/rm",
                                        "--prompts", Self.dir + "/prompts.jsonl", "--bag", bag, "--iteration", "V1", "--k", "4",
                                        "--max-new-tokens", "12", "--chunk", "2", "--ranks", String(ranks), "--tensor", String(tensor)])
            XCTAssertEqual(r.status, 0, r.out + r.err)
            return try JSONLines.read(SampleRecord.self, path: bag)
        }
        let one = try bag(ranks: 1, tensor: 1)
        for (ranks, tensor) in [(2, 2), (4, 2)] {
            let split = try bag(ranks: ranks, tensor: tensor)
            XCTAssertEqual(split.map(\.text), one.map(\.text), "\(ranks) ranks at tensor \(tensor)")
            for (a, b) in zip(split, one) { XCTAssertEqual(a.reward, b.reward, accuracy: 1e-5) }
        }
        XCTAssertTrue(Set(one.map(\.text)).count > 4, "the answers differ from one another: \(Set(one.map(\.text)))")
    }

    func testCombinedRewardAndFigure7() throws {
        XCTAssertEqual(RejectionSampling.combined(helpful: 0.9, safety: 0.5, safetyPrompt: true), 0.5, "a safety prompt: the safety reward")
        XCTAssertEqual(RejectionSampling.combined(helpful: 0.9, safety: 0.1, safetyPrompt: false), 0.1, "unsafe-looking answer: below 0.15")
        XCTAssertEqual(RejectionSampling.combined(helpful: 0.9, safety: 0.5, safetyPrompt: false), 0.9)
        let bag = try step("d.jsonl", chunk: 6).run()
        XCTAssertTrue(bag.allSatisfy { $0.reward > 0 && $0.reward < 1 })
        let curve = RejectionSampling.figure7(bag, k: 4)
        XCTAssertEqual(curve.map(\.k), [1, 2, 4])
        XCTAssertEqual(curve[0].meanMax, curve[0].meanMedian, accuracy: 1e-12, "one sample: max = median")
        for (a, b) in zip(curve, curve.dropFirst()) { XCTAssertGreaterThanOrEqual(b.meanMax, a.meanMax, "the maximum grows with K") }
        XCTAssertGreaterThan(curve.last!.meanMax - curve.last!.meanMedian, 0, "more samples open a gap between best and median")
    }
}
