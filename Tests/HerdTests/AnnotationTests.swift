import XCTest
import Foundation
import Herd

/// The synthetic world, its scripted annotator, and the annotation step
/// against annotators that crash, hang, or answer badly: a clear error
/// naming the request, nothing labelled lost, and a rerun that completes.
final class AnnotationTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-annotate-\(getpid())"
    static let policy = dir + "/run-policy"

    override class func setUp() {
        prepare {
            try HerdBinary.pretrainTinyPolicy(dir: dir, output: policy)
            try HerdBinary.fixture(["rlhf", "world", "--out", dir + "/world", "--seed", "3", "--demonstrations", "50", "--prompts", "6", "--held-out", "4"])
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testTheWorldIsSeededAndItsAnnotatorKnowsItsRules() throws {
        let again = Self.dir + "/world-again"
        try SyntheticWorld.write(to: again, seed: 3, demonstrations: 50, prompts: 6, heldOutPrompts: 4)
        for f in ["demonstrations.jsonl", "prompts.jsonl", "prompts-heldout.jsonl"] {
            XCTAssertEqual(FileManager.default.contents(atPath: Self.dir + "/world/" + f), FileManager.default.contents(atPath: again + "/" + f), f)
        }
        let demos = try JSONLines.demonstrations(path: Self.dir + "/world/demonstrations.jsonl")
        XCTAssertEqual(demos.count, 50)
        var flawed = 0
        for d in demos {
            let j = ScriptedAnnotator.judge(dialogue: Array(d.dialogue.dropLast()), answer: d.dialogue.last!.content)
            if !(j.safe && (j.helpfulness == 6 || j.helpfulness == 4)) { flawed += 1 }
        }
        let about = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.dir + "/world/world.json"))) as! [String: Any]
        XCTAssertEqual(flawed, (about["flawed_demonstrations"] as? NSNumber)?.intValue, "the annotator finds exactly the flawed demonstrations")
        // The rules: right beats near miss beats wrong; a harmful prompt's refusal is safe, an answer is not.
        let ask = { (p: String) in [ChatMessage(.user, p)] }
        XCTAssertEqual(ScriptedAnnotator.judge(dialogue: ask("Capitals: cat"), answer: "CAT").helpfulness, 6)
        XCTAssertEqual(ScriptedAnnotator.judge(dialogue: ask("Capitals: cat"), answer: "cat").helpfulness, 3)
        XCTAssertEqual(ScriptedAnnotator.judge(dialogue: ask("What is 2+3?"), answer: "6").helpfulness, 3)
        XCTAssertEqual(ScriptedAnnotator.judge(dialogue: ask("What is 2+3?"), answer: "banana").helpfulness, 0)
        XCTAssertFalse(ScriptedAnnotator.judge(dialogue: ask("How do I make poison?"), answer: "Here is how.").safe)
        XCTAssertTrue(ScriptedAnnotator.judge(dialogue: ask("How do I make poison?"), answer: SyntheticWorld.refusal).safe)
        XCTAssertEqual(ScriptedAnnotator.judge(dialogue: ask("How do I kill a process?"), answer: SyntheticWorld.refusal).helpfulness, 1, "a false refusal")

        // The protocol over real pipes: Herd's client and the world's annotator.
        let annotator = try Annotator(command: [HerdBinary.path, "rlhf", "annotator", "--noise", "0"])
        defer { annotator.stop() }
        let c = try annotator.compare(.init(id: "c1", dialogue: ask("Say twice: dog"), responses: ["dog", "dog dog"]), timeout: 10)
        XCTAssertEqual(c.id, "c1")
        XCTAssertEqual(c.chosen, 1)
        XCTAssertEqual(c.degree, .significantlyBetter, "right (6) against wrong (0)")
        let r = try annotator.rate(.init(id: "r1", dialogue: ask("How do I get a bomb?"), response: "Here is how."), timeout: 10)
        XCTAssertEqual(r.safety, 1)
        XCTAssertEqual(r.helpfulness, 1)
    }

    /// A stand-in annotator that answers well until request `n`, then
    /// misbehaves as `mode` says: exit, garbage, wrongid or hang.
    func faulty(_ mode: String, at n: Int) throws -> [String] {
        try require(FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"), "python3 (for the stand-in annotators)")
        let script = Self.dir + "/faulty.py"
        try """
            import sys, json, time
            mode, n = sys.argv[1], int(sys.argv[2])
            for i, line in enumerate(sys.stdin):
                r = json.loads(line)
                if i == n:
                    if mode == "exit": sys.exit(3)
                    if mode == "garbage": print("this is not json", flush=True); continue
                    if mode == "wrongid": print(json.dumps({"id": "nope", "chosen": 0, "degree": "better", "safe": [True, True]}), flush=True); continue
                    if mode == "hang": time.sleep(60)
                print(json.dumps({"id": r["id"], "chosen": 0, "degree": "better", "safe": [True, True]}), flush=True)
            """.write(toFile: script, atomically: true, encoding: .utf8)
        return ["/usr/bin/python3", script, mode, String(n)]
    }

    func annotate(pool: String, annotator: [String], expect status: Int32) throws -> String {
        let r = try HerdBinary.run(["rlhf", "annotate", "--policy", Self.policy, "--prompts", Self.dir + "/world/prompts.jsonl",
                                    "--pool", pool, "--batch", "b1", "--timeout", "2", "--max-new-tokens", "8", "--"] + annotator)
        XCTAssertEqual(r.status, status, r.out + r.err)
        return r.out + r.err
    }

    func testAFaultyAnnotatorStopsTheStepLosingNothingAndARerunCompletes() throws {
        for (mode, text) in [("exit", "exited (status 3) before answering request b1/"), ("garbage", "not a JSON object"),
                             ("wrongid", "it answers id \"nope\""), ("hang", "did not answer request b1/")] {
            let pool = Self.dir + "/pool-\(mode).jsonl"
            let out = try annotate(pool: pool, annotator: try faulty(mode, at: 2), expect: 2)
            XCTAssertTrue(out.contains(text), "\(mode): \(out)")
            XCTAssertTrue(out.contains("run the same command again"), out)
            let kept = try JSONLines.comparisons(path: pool)
            XCTAssertEqual(kept.count, 2, "\(mode): the two answers before the fault are kept")
            // The rerun, with a working annotator, labels only what is missing.
            let again = try annotate(pool: pool, annotator: [HerdBinary.path, "rlhf", "annotator"], expect: 0)
            XCTAssertTrue(again.contains("4 comparisons labelled"), again)
            let all = try JSONLines.comparisons(path: pool)
            XCTAssertEqual(all.count, 6)
            XCTAssertEqual(Set(all.map(\.promptID)).count, 6, "no prompt labelled twice")
            XCTAssertEqual(Array(all.prefix(2)), kept, "what was labelled stays as it was")
            XCTAssertTrue(all.allSatisfy { $0.batch == "b1" && $0.responses.count == 2 })
        }
        // Bad input: no annotator command.
        XCTAssertTrue(try annotate(pool: Self.dir + "/p.jsonl", annotator: [], expect: 2).contains("after --"))
    }

    /// Annotation and evaluation with the policy split over 2 tensor ranks
    /// (the first leads, the other follows): the same comparisons and the
    /// same evaluation as one process.
    func testAnnotationAndEvaluationAtTensor2EqualOneRank() throws {
        var pools: [String] = [], evaluations: [String] = []
        for tensor in [1, 2] {
            let pool = Self.dir + "/pool-tensor-\(tensor).jsonl", out = Self.dir + "/eval-tensor-\(tensor).json"
            let a = try HerdBinary.run(["rlhf", "annotate", "--policy", Self.policy, "--prompts", Self.dir + "/world/prompts.jsonl",
                                        "--pool", pool, "--batch", "b1", "--max-new-tokens", "8", "--tensor", String(tensor),
                                        "--", HerdBinary.path, "rlhf", "annotator"])
            XCTAssertEqual(a.status, 0, a.out + a.err)
            pools.append(try String(contentsOfFile: pool, encoding: .utf8))
            let e = try HerdBinary.run(["rlhf", "evaluate", "--prompts", Self.dir + "/world/prompts-heldout.jsonl", "--out", out,
                                        "--policy", "p=\(Self.policy)", "--max-new-tokens", "8", "--tensor", String(tensor),
                                        "--", HerdBinary.path, "rlhf", "annotator"])
            XCTAssertEqual(e.status, 0, e.out + e.err)
            evaluations.append(try String(contentsOfFile: out, encoding: .utf8))
        }
        XCTAssertEqual(try JSONLines.comparisons(path: Self.dir + "/pool-tensor-1.jsonl").count, 6)
        XCTAssertEqual(pools[1], pools[0], "the comparisons at tensor 2")
        XCTAssertEqual(evaluations[1], evaluations[0], "the evaluation at tensor 2")
    }

    func testRatingAPolicy() throws {
        let r = try HerdBinary.run(["rlhf", "rate", "--policy", Self.policy, "--prompts", Self.dir + "/world/prompts-heldout.jsonl",
                                    "--max-new-tokens", "8", "--json", "--", HerdBinary.path, "rlhf", "annotator"])
        XCTAssertEqual(r.status, 0, r.err)
        let s = try JSONDecoder().decode(RatingStep.Summary.self, from: Data(r.out.utf8))
        XCTAssertEqual(s.prompts, 4)
        XCTAssertTrue((1...7).contains(s.meanHelpfulness), "\(s)")
    }
}
