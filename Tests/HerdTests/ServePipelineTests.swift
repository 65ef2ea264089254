import XCTest
import Foundation
import Herd

/// An RLHF pipeline as `herd serve --pipeline` shows it: a tiny pipeline
/// (tiny-gqa policies on the synthetic world, SFT + V1) launched for real,
/// then its iteration graph and report read by Chromium and by /metrics.
final class ServePipelineTests: XCTestCase {
    static let dir = NSTemporaryDirectory() + "herd-serve-pipeline-\(getpid())"

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testPipelinePageShowsTheIterationGraphAndTheReport() throws {
        try Chromium.require()
        let d = Self.dir
        try HerdBinary.pretrainTinyPolicy(dir: d, output: d + "/policy", steps: 20)
        let world = try HerdBinary.run(["rlhf", "world", "--out", d + "/world", "--demonstrations", "10", "--prompts", "60",
                                        "--held-out", "16", "--dialogues", "6", "--held-out-dialogues", "4", "--turns", "3"])
        XCTAssertEqual(world.status, 0, world.err)
        // Pipeline tests' tiny pipeline, smaller: one policy, 20 sampled prompts, two iterations.
        let manifest = try HerdBinary.tinyPipeline(dir: d, name: "tiny") { text in
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let kept = lines.filter { !$0.contains("{name: small,") }
            let upToIterations = kept.prefix { !$0.hasPrefix("iterations:") }
            return (upToIterations + ["iterations:", "  - {annotate: 12, k: 2}", "  - {annotate: 12, k: 2}"]).joined(separator: "\n")
                .replacingOccurrences(of: "sample_count: 40", with: "sample_count: 20")
                .replacingOccurrences(of: "sampling: {max_new_tokens: 24", with: "sampling: {max_new_tokens: 16")
        }
        let launched = try HerdBinary.run(["rlhf", "launch", manifest, "--iteration", "1"])
        XCTAssertEqual(launched.status, 0, launched.out + launched.err)

        let server = try ServeProcess(home: d + "/home", arguments: ["--pipeline", manifest])
        defer { server.stop() }
        let snapshot = try server.json("/api/pipelines/tiny")
        let iterations = try XCTUnwrap(snapshot["iterations"] as? [[String: Any]])
        XCTAssertEqual(iterations.map { $0["name"] as? String }, ["SFT", "V1", "V2"])
        let states = iterations.map { ($0["stages"] as? [[String: Any]] ?? []).map { $0["state"] as? String ?? "" } }
        XCTAssertTrue(states[0].allSatisfy { $0 == "finished" } && states[1].allSatisfy { $0 == "finished" }, "\(states)")
        XCTAssertTrue(states[2].allSatisfy { $0 == "pending" }, "\(states)")
        let report = try server.json("/api/pipelines/tiny/report")
        XCTAssertEqual(Set((report["policies"] as? [[String: Any]] ?? []).compactMap { $0["iteration"] as? String }), ["SFT", "V1"])

        // The page: one box per stage, coloured by state, and the report's lines.
        let page = "http://127.0.0.1:\(server.port)/#/pipeline/tiny"
        let dom = try Chromium.dom(page)
        XCTAssertTrue(dom.contains(#"<div id="status">ready</div>"#), dom)
        let finished = dom.components(separatedBy: #"data-state="finished""#).count - 1
        let pending = dom.components(separatedBy: #"data-state="pending""#).count - 1
        XCTAssertEqual(finished, states[0].count + states[1].count, dom)
        XCTAssertEqual(pending, states[2].count)
        XCTAssertTrue(dom.contains(#"data-id="V1/annotate""#), dom)
        XCTAssertTrue(dom.contains(#"data-name="large: right" data-points="2""#), dom)
        // The table: each policy's shares with their intervals, and the gate's decision on V1.
        XCTAssertEqual(dom.components(separatedBy: #"class="policy-row""#).count - 1, 2, dom)
        XCTAssertNotNil(dom.range(of: #"<tr class="policy-row" data-promoted="(true|false)"><td>V1</td>"#, options: .regularExpression), dom)
        XCTAssertTrue(dom.contains("The pipeline's policies (the last promoted of each size): large"), dom)
        try Chromium.screenshot(page, to: TestOutput.directory("serve") + "/5-pipeline.png", size: "1300,900")

        // /metrics: every stage's state and the finished ones' durations.
        let metrics = try server.request("/metrics").text
        XCTAssertTrue(metrics.contains(#"herd_rlhf_stage_state{pipeline="tiny",iteration="V1",stage="annotate",state="finished"} 1"#), metrics)
        XCTAssertNotNil(metrics.range(of: #"herd_rlhf_stage_duration_seconds\{pipeline="tiny",iteration="V1",stage="annotate"\} [0-9.]+"#, options: .regularExpression), metrics)
        // Every figure with its interval, and the gate's decision.
        for name in ["herd_rlhf_eval", "herd_rlhf_eval_low", "herd_rlhf_eval_high"] {
            XCTAssertNotNil(metrics.range(of: name + #"\{pipeline="tiny",iteration="V1",policy="large",metric="right"\} [0-9.]+"#, options: .regularExpression), metrics)
        }
        XCTAssertNotNil(metrics.range(of: #"herd_rlhf_promoted\{pipeline="tiny",iteration="V1",policy="large"\} [01]"#, options: .regularExpression), metrics)

        // herd plot on the pipeline: the per-iteration figures as SVG.
        let plot = try HerdBinary.run(["plot", manifest, "--out", d + "/report.svg"])
        XCTAssertEqual(plot.status, 0, plot.err)
        XCTAssertTrue(try String(contentsOfFile: d + "/report.svg", encoding: .utf8).contains("<svg"))
    }
}
