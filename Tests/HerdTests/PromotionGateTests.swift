import XCTest
import Foundation
import Herd

/// The promotion gate and the intervals it reads, without processes:
/// bootstrap intervals against the normal approximation, the gate's
/// verdicts on made-up evaluations, and a pipeline's incumbents following
/// the decisions (the next iteration samples and starts from the last
/// promoted policy; the report names what was refused and why).
final class PromotionGateTests: XCTestCase {
    /// An evaluation of `n` plain prompts (plus `unsafe` safety-tagged ones)
    /// whose greedy answer to prompt i is right when `right(i)`, and sampled
    /// at T = 1 right when `sampled(i)`; `violates(i)` rates it unsafe.
    static func evaluation(_ n: Int, unsafe: Int = 0, right: @escaping (Int) -> Bool, sampled: ((Int) -> Bool)? = nil,
                           violates: (Int) -> Bool = { _ in false }, refuses: (Int) -> Bool = { _ in true }) throws -> PolicyEvaluation.Result {
        func summary(_ ok: (Int) -> Bool) -> [String: Any] {
            var answers: [[String: Any]] = []
            for i in 0..<(n + unsafe) {
                let isUnsafe = i >= n
                answers.append(["prompt": "p\(i)", "helpfulness": !isUnsafe && ok(i) ? 7 : 3, "safety": violates(i) ? 1 : 5,
                                "refusal": isUnsafe ? refuses(i) : false, "unsafePrompt": isUnsafe, "borderline": false])
            }
            let top = (0..<n).filter(ok).count
            return ["prompts": n + unsafe, "meanHelpfulness": 0, "helpfulShare": 0, "topShare": Double(top) / Double(n),
                    "violationShare": 0, "answers": answers]
        }
        let s = summary(sampled ?? right)
        let json: [String: Any] = ["policy": "p", "greedy": summary(right), "sampledTopShare": s["topShare"]!, "sampled": s]
        return try JSONDecoder().decode(PolicyEvaluation.Result.self, from: JSONSerialization.data(withJSONObject: json))
    }

    func testBootstrapIntervalsAgreeWithTheNormalApproximation() {
        // 60 of 200 right: the interval's half-width near 1.96·sqrt(p(1 − p)/n).
        let values = (0..<200).map { $0 % 10 < 3 ? 1.0 : 0.0 }
        let i = Bootstrap.mean(values, level: 0.95)
        XCTAssertEqual(i.estimate, 0.3)
        let normal = 1.96 * (0.3 * 0.7 / 200).squareRoot()
        XCTAssertEqual((i.high - i.low) / 2, normal, accuracy: 0.15 * normal)
        XCTAssertTrue(i.low < 0.3 && 0.3 < i.high)
        // A wider level, a wider interval; the same values, the same interval.
        let wide = Bootstrap.mean(values, level: 0.99)
        XCTAssertTrue(wide.low < i.low && wide.high > i.high)
        XCTAssertEqual(Bootstrap.mean(values, level: 0.95), i)
        // Constant values have no spread.
        let flat = Bootstrap.mean([Double](repeating: 1, count: 50), level: 0.95)
        XCTAssertEqual(flat.low, 1); XCTAssertEqual(flat.high, 1)
    }

    /// Several answers sampled per prompt: the prompt's value is their mean, and the summary counts every answer.
    func testSeveralSamplesOfAPromptAverage() throws {
        func answer(_ prompt: String, _ h: Int) -> RatingStep.RatedAnswer {
            .init(prompt: prompt, helpfulness: h, safety: 5, refusal: false, unsafePrompt: false, borderline: false)
        }
        let sampled = RatingStep.summary([answer("a", 7), answer("b", 7), answer("a", 3), answer("b", 7)])
        XCTAssertEqual(sampled.topShare, 0.75)
        var r = try Self.evaluation(2, right: { _ in true })
        r.sampled = sampled
        XCTAssertEqual(EvaluationMetric.rightSampled.values(r), ["a": 0.5, "b": 1.0])
    }

    func testPairedDifferenceIsNarrowerThanTwoIntervals() throws {
        // Two policies that agree on 180 of 200 prompts; the candidate is right on 10 more.
        var a: [String: Double] = [:], b: [String: Double] = [:]
        for k in 0..<200 {
            let base = k % 2 == 0 ? 1.0 : 0.0
            b["p\(k)"] = base
            a["p\(k)"] = k < 20 ? (k < 15 ? 1 : 0) : base
        }
        let d = try XCTUnwrap(Bootstrap.pairedDifference(a, b, level: 0.95))
        XCTAssertEqual(d.estimate, (Array(a.values).reduce(0, +) - Array(b.values).reduce(0, +)) / 200, accuracy: 1e-12)
        let ia = Bootstrap.mean(Array(a.values), level: 0.95), ib = Bootstrap.mean(Array(b.values), level: 0.95)
        XCTAssertLessThan(d.high - d.low, 0.5 * ((ia.high - ia.low) + (ib.high - ib.low)) / 2,
                          "pairing over the same prompts removes the spread both policies share")
        XCTAssertNil(Bootstrap.pairedDifference(["x": 1], ["y": 1], level: 0.95), "no prompt in common, no comparison")
    }

    func testGatePromotesOnlyWhatIsNotWorseAndSafe() throws {
        let rule = PipelineManifest.PromotionRule()
        let incumbent = try Self.evaluation(200, unsafe: 30, right: { $0 % 2 == 0 })
        // The same answers: a difference of exactly 0, within any margin.
        let same = PromotionGate.judge(candidate: incumbent, incumbent: incumbent, rule: rule)
        XCTAssertTrue(same.promoted, same.reason)
        // Better on 30 prompts, worse on none.
        let better = try Self.evaluation(200, unsafe: 30, right: { $0 % 2 == 0 || $0 < 60 })
        let up = PromotionGate.judge(candidate: better, incumbent: incumbent, rule: rule)
        XCTAssertTrue(up.promoted, up.reason)
        XCTAssertGreaterThan(try XCTUnwrap(up.checks.first { $0.metric == .right }?.difference?.low), 0)
        // Worse on 30 prompts: refused, naming the metric.
        let worse = try Self.evaluation(200, unsafe: 30, right: { $0 % 2 == 0 && $0 >= 60 })
        let down = PromotionGate.judge(candidate: worse, incumbent: incumbent, rule: rule)
        XCTAssertFalse(down.promoted)
        XCTAssertTrue(down.reason.contains("not shown non-inferior at 90% on right -0.150"), down.reason)
        // Better greedy, worse at T = 1: refused on the sampled share alone.
        let mixed = try Self.evaluation(200, unsafe: 30, right: { $0 % 2 == 0 || $0 < 60 }, sampled: { $0 % 2 == 0 && $0 >= 60 })
        let m = PromotionGate.judge(candidate: mixed, incumbent: incumbent, rule: rule)
        XCTAssertFalse(m.promoted)
        XCTAssertEqual(m.checks.filter { !$0.passed }.map { $0.metric }, [EvaluationMetric.rightSampled])
        // As right, but refusing 5 of the 30 unsafe prompts the incumbent refused: a safety regression.
        let unsafe = try Self.evaluation(200, unsafe: 30, right: { $0 % 2 == 0 || $0 < 60 }, refuses: { $0 >= 205 })
        let u = PromotionGate.judge(candidate: unsafe, incumbent: incumbent, rule: rule)
        XCTAssertFalse(u.promoted)
        XCTAssertTrue(u.reason.contains("safety regressed: unsafe_refused -0.167"), u.reason)
        // With the gate off the worse policy is promoted, and the reason says what the gate would have done.
        let off = PromotionGate.judge(candidate: worse, incumbent: incumbent, rule: .ungated)
        XCTAssertTrue(off.promoted)
        XCTAssertTrue(off.reason.contains("it would have refused"), off.reason)
    }

    /// A pipeline whose V1 is better than SFT and V2 worse than V1: V2 is
    /// refused, V3 samples and starts from V1's policy and is judged
    /// against it, and the report says so.
    func testIterationsStartFromTheIncumbent() throws {
        let dir = NSTemporaryDirectory() + "herd-gate-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/run", withIntermediateDirectories: true)
        let prompt = #"{"id":"a","dialogue":[{"role":"user","content":"hi"}]}"#
        try (prompt + "\n").write(toFile: dir + "/prompts.jsonl", atomically: true, encoding: .utf8)
        let yaml = """
            name: gate
            output: \(dir)/run
            annotator: [/bin/true]
            prompts: {annotate: \(dir)/prompts.jsonl, sample: \(dir)/prompts.jsonl, held_out: \(dir)/prompts.jsonl}
            policies: [{name: large, init: \(dir)/sft, sampler: true}]
            reward_models: {init: \(dir)/sft}
            finetune: {from: previous, steps: 1}
            iterations: [{annotate: 1, k: 2}, {annotate: 1, k: 2}, {annotate: 1, k: 2}]
            """
        let m = try PipelineManifest.parse(yaml: yaml, file: dir + "/gate.yaml", checkFiles: false)
        let graph = PipelineGraph(manifest: m)
        func write(_ n: Int, _ r: PolicyEvaluation.Result) throws {
            try FileManager.default.createDirectory(atPath: graph.directory(n), withIntermediateDirectories: true)
            try JSONFile.write(["large": r], to: graph.evaluation(n))
        }
        try write(0, try Self.evaluation(200, right: { $0 % 2 == 0 }))
        try write(1, try Self.evaluation(200, right: { $0 % 2 == 0 || $0 < 60 }))
        try write(2, try Self.evaluation(200, right: { $0 % 2 == 0 }))
        let large = m.policies[0]
        let decisions = try graph.promotions(through: 3)
        XCTAssertEqual(decisions.map { $0?.verdict("large")?.promoted }, [true, false, nil])
        XCTAssertEqual(decisions[1]?.verdict("large")?.incumbent, "V1")
        XCTAssertEqual(try graph.incumbent(large, after: 2), graph.candidate(large, of: 1))
        // V3 samples from V1's policy and fine-tunes from it (finetune.from: previous).
        let v3 = try graph.stages(3)
        let sample = try XCTUnwrap(v3.first { $0.name == "sample" })
        XCTAssertEqual(sample.arguments[sample.arguments.firstIndex(of: "--policy")! + 1], "\(dir)/run/V1/finetune-large")
        let finetune = try XCTUnwrap(v3.first { $0.name == "finetune-large" }?.files.first?.text)
        XCTAssertTrue(finetune.contains("init: \(dir)/run/V1/finetune-large"), finetune)
        // V3, as good as V1, is judged against V1 and promoted.
        try write(3, try Self.evaluation(200, right: { $0 % 2 == 0 || $0 < 60 }))
        let v3Decision = try XCTUnwrap(try graph.promotions(through: 3)[2]?.verdict("large"))
        XCTAssertEqual(v3Decision.incumbent, "V1")
        XCTAssertTrue(v3Decision.promoted, v3Decision.reason)
        // The report: V2 refused with its reason, the result V3's policy.
        let f = try PipelineReport(graph: graph).figures(through: 3)
        XCTAssertEqual(f.policies.map { $0.promoted }, [nil, true, false, true])
        XCTAssertEqual(f.result?.first?.iteration, "V3")
        let md = PipelineReport.markdown(f)
        XCTAssertTrue(md.contains("| V2 | large | V1 |"), md)
        XCTAssertTrue(md.contains("**not promoted**: not shown non-inferior"), md)
        XCTAssertTrue(md.contains("0.500 ["), "figures carry their intervals: \(md)")
    }
}
