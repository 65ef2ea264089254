import XCTest
import Foundation
import Herd

/// Reward models as Herd jobs: started from a pretrained run, trained on
/// comparisons with the margin loss, evaluated per degree; the same losses
/// at (dp, tp) = (2, 1) and (1, 2) as in one process.
final class RewardModelTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-rm-\(getpid())"
    static var base = ""

    override class func setUp() {
        prepare {
            try HerdBinary.writeCorpus(in: dir)
            base = dir + "/run-base"
            try """
                kind: pretrain
                model: {preset: tiny-gqa, max_seq_len: 64}
                data: {corpus: \(dir)/corpus.txt, tokenizer: byte, seq_len: 64}
                batch: {sequences: 8}
                optimizer: {lr: 3e-3}
                schedule: {warmup_steps: 10}
                steps: 40
                threads: 2
                checkpoint: {interval: 40}
                output: \(base)
                """.write(toFile: dir + "/base.yaml", atomically: true, encoding: .utf8)
            try HerdBinary.fixture(["run", dir + "/base.yaml"])
            // The chosen answer is the right letter; the rejected one a non-answer.
            var g = SplitMix64(seed: 12)
            let degrees = PreferenceDegree.allCases
            var lines: [String] = []
            for i in 0..<480 {
                let k = Int(g.next() % 25), chosen = Int(g.next() % 2)
                let right = String(Character(Unicode.Scalar(UInt8(98 + k)))), wrong = "I cannot say."
                let line: [String: Any] = ["prompt_id": "p\(i)", "dialogue": [["role": "user", "content": "after \(Character(Unicode.Scalar(UInt8(97 + k))))"]],
                                           "responses": chosen == 0 ? [right, wrong] : [wrong, right], "chosen": chosen,
                                           "degree": degrees[Int(g.next() % 4)].rawValue, "safe": [true, true], "batch": "b1"]
                lines.append(String(decoding: try JSONSerialization.data(withJSONObject: line), as: UTF8.self))
            }
            try lines.joined(separator: "\n").write(toFile: dir + "/comparisons.jsonl", atomically: true, encoding: .utf8)
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func manifest(_ name: String, data: Int = 1, tensor: Int = 1, zero: Int = 0, extra: String = "") throws -> String {
        let path = Self.dir + "/\(name).yaml"
        try """
            kind: reward
            init: \(Self.base)
            data: {comparisons: \(Self.dir)/comparisons.jsonl, seq_len: 32, val_fraction: 0.2}
            batch: {pairs: 8, micro_batch: 4}
            optimizer: {lr: 2e-3}
            reward: {margin: small}
            epochs: 2
            eval: {interval: 20}
            log_interval: 1
            threads: 2
            parallelism: {data: \(data), tensor: \(tensor), zero: \(zero)}
            output: \(Self.dir)/run-\(name)
            \(extra)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func events(_ name: String, _ kind: RunEvent.Kind) throws -> [RunEvent] {
        try RunDirectory(Self.dir + "/run-\(name)").readEvents().filter { $0.event == kind }
    }

    func testRewardModelLearnsFromAPretrainedRunAndReportsAccuracyPerDegree() throws {
        let job = try manifest("rm")
        let m = try JobManifest.load(path: job)
        XCTAssertTrue(m.model.config.scalarHead)
        XCTAssertEqual(m.steps, 96, "2 epochs of 384 training pairs, 8 pairs a step")
        XCTAssertEqual(m.schedule.warmupSteps, 5, "3% of the steps, at least 5")
        let r = try HerdBinary.run(["run", job])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("significantly_better"), r.out)
        let evals = try events("rm", .eval)
        let last = try XCTUnwrap(evals.last)
        let accuracy = try XCTUnwrap(last.accuracy)
        XCTAssertGreaterThanOrEqual(accuracy, 0.9, "\(last)")
        for d in PreferenceDegree.allCases { XCTAssertNotNil(last.accuracy(d), d.rawValue) }
        XCTAssertEqual(last.pairs, 96)
        // herd score: the right answer scores above the non-answer.
        func score(_ answer: String) throws -> Double {
            let r = try HerdBinary.run(["score", "--helpfulness", Self.dir + "/run-rm", "--prompt", "after c", "--answer", answer])
            XCTAssertEqual(r.status, 0, r.err)
            return try XCTUnwrap(Double(r.out.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""), r.out)
        }
        XCTAssertGreaterThan(try score("d"), try score("I cannot say."))
        // The run's checkpoint is a reward model; it has no causal-LM form to export.
        let export = try HerdBinary.run(["export", "--checkpoint", Self.dir + "/run-rm", "--hf", Self.dir + "/hf-rm"])
        XCTAssertNotEqual(export.status, 0)
        XCTAssertTrue(export.err.contains("reward model"), export.err)
    }

    func testLayoutsMatchOneProcess() throws {
        func losses(_ name: String) throws -> [Double] {
            try events(name, .step).compactMap(\.loss)
        }
        // ZeRO-3 also starts from the chat model a part at a time, keeps its
        // own reward head's initialisation, and evaluates in step with the other rank.
        for (name, d, t, z) in [("one", 1, 1, 0), ("dp2", 2, 1, 0), ("tp2", 1, 2, 0), ("dp2-zero3", 2, 1, 3)] {
            let r = try HerdBinary.run(["run", try manifest(name, data: d, tensor: t, zero: z), "--steps", "20"])
            XCTAssertEqual(r.status, 0, "\(name): \(r.err)")
        }
        let one = try losses("one")
        XCTAssertEqual(one.count, 20)
        XCTAssertEqual(try events("dp2-zero3", .eval).last?.accuracy, try events("one", .eval).last?.accuracy, "held-out accuracy")
        for name in ["dp2", "tp2", "dp2-zero3"] {
            let other = try losses(name)
            XCTAssertEqual(other.count, one.count, name)
            for (a, b) in zip(one, other) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(abs(a), 1e-3), name) }
        }
    }

    /// The paper's mixes: helpfulness on its own comparisons plus as many
    /// safety ones; safety on its own plus helpfulness making up 10%.
    func testObjectivesPickTheirMix() throws {
        var prompts: [String] = []
        for i in 0..<480 { prompts.append(#"{"id": "p\#(i)", "dialogue": [{"role": "user", "content": "q"}], "safety": \#(i % 4 == 0)}"#) }
        try prompts.joined(separator: "\n").write(toFile: Self.dir + "/prompts.jsonl", atomically: true, encoding: .utf8)
        func data(_ objective: String) throws -> ComparisonData {
            let path = Self.dir + "/mix-\(objective).yaml"
            try (try String(contentsOfFile: try manifest("mix"), encoding: .utf8))
                .replacingOccurrences(of: "val_fraction: 0.2}", with: "val_fraction: 0.2, prompts: \(Self.dir)/prompts.jsonl}")
                .replacingOccurrences(of: "reward: {margin: small}", with: "reward: {margin: small, objective: \(objective)}")
                .write(toFile: path, atomically: true, encoding: .utf8)
            let m = try JobManifest.load(path: path)
            return try ComparisonData(data: m.data, initFrom: Self.base, reward: m.reward, seed: m.seed)
        }
        // 384 training comparisons: p0..p383, a quarter of them safety (96); held out p384..p479 (24 safety).
        let helpful = try data("helpfulness"), safe = try data("safety")
        XCTAssertEqual(helpful.ownCount, 288)
        XCTAssertEqual(helpful.otherCount, 96, "as many safety comparisons as there are, up to an equal share")
        XCTAssertEqual(helpful.dataset.heldOut.count, 72)
        XCTAssertEqual(safe.ownCount, 96)
        XCTAssertEqual(safe.otherCount, 11, "96 / 9 ≈ 10.7: helpfulness is 10% of the mix")
        XCTAssertEqual(safe.dataset.heldOut.count, 24)
        XCTAssertEqual(safe.dataset.pairs.count, 107)
        // Annotation batches pick the pool's part: the pool here is one batch.
        let path = Self.dir + "/batches.yaml"
        try (try String(contentsOfFile: try manifest("batches"), encoding: .utf8))
            .replacingOccurrences(of: "val_fraction: 0.2}", with: "val_fraction: 0.2, batches: [b2]}")
            .write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try JobManifest.load(path: path)) { XCTAssertTrue("\($0)".contains("no comparisons"), "\($0)") }
    }

    func testBadRewardManifests() throws {
        let margin = try manifest("bad").replacingOccurrences(of: "bad.yaml", with: "bad-margin.yaml")
        try (try String(contentsOfFile: try manifest("bad"), encoding: .utf8)).replacingOccurrences(of: "margin: small", with: "margin: huge")
            .write(toFile: margin, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try JobManifest.load(path: margin)) {
            XCTAssertTrue("\($0)".contains("reward.margin") && "\($0)".contains("expected one of: small, large, none"), "\($0)")
        }
        let odd = Self.dir + "/odd.yaml"
        try (try String(contentsOfFile: try manifest("odd"), encoding: .utf8)).replacingOccurrences(of: "micro_batch: 4", with: "micro_batch: 3")
            .write(toFile: odd, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try JobManifest.load(path: odd)) { XCTAssertTrue("\($0)".contains("batch.micro_batch") && "\($0)".contains("even"), "\($0)") }
    }
}
