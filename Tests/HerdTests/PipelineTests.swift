import XCTest
import Foundation
import Herd

/// The iteration scheduler, end to end on a tiny pipeline (tiny-gqa
/// policies on the synthetic world, SFT + V1..V3): a scheduler SIGKILLed
/// during V2's sampling, during its evaluation and during V3's
/// fine-tuning, resumed each time, ends with the same report and the same
/// promotion decisions as an uninterrupted run, and its log shows the
/// finished stages skipped; bad pipelines are refused before any stage
/// starts; reward models below their health thresholds stop an iteration
/// before it samples.
final class PipelineTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-pipeline-\(getpid())"

    override class func setUp() {
        prepare {
            try HerdBinary.pretrainTinyPolicy(dir: dir, output: dir + "/policy", steps: 20)
            try HerdBinary.fixture(["rlhf", "world", "--out", dir + "/world", "--demonstrations", "10", "--prompts", "60", "--held-out", "16",
                                    "--dialogues", "6", "--held-out-dialogues", "4", "--turns", "3"])
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A pipeline manifest; `change` edits its text.
    func pipeline(_ name: String, change: (String) -> String = { $0 }) throws -> String {
        try HerdBinary.tinyPipeline(dir: Self.dir, name: name, change: change)
    }

    func state(_ run: String) -> PipelineState? { try? PipelineState.read(run: run) }

    /// Starts `herd rlhf …` and SIGKILLs it once `ready` holds (checked every 20 ms).
    func killWhen(_ args: [String], timeout: Double = 120, _ ready: () -> Bool) throws {
        let (p, _, _) = try HerdBinary.start(args)
        let deadline = Date().addingTimeInterval(timeout)
        while !ready() && p.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(p.isRunning, "the scheduler ended before the moment to kill it")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    func testKilledSchedulerResumesToTheSameReport() throws {
        let whole = try pipeline("whole")
        let r = try HerdBinary.run(["rlhf", "launch", whole, "--iteration", "1", "--through", "3"])
        XCTAssertEqual(r.status, 0, r.out + r.err)
        let wholeRun = Self.dir + "/run-whole"
        XCTAssertTrue(r.out.contains("| V3 | small |"), r.out)

        let killed = try pipeline("killed")
        let run = Self.dir + "/run-killed"
        // Killed during V2's sampling, with part of the bag written.
        try killWhen(["rlhf", "launch", killed, "--iteration", "1", "--through", "3"]) {
            ((try? String(contentsOfFile: run + "/V2/bag.jsonl", encoding: .utf8))?.split(separator: "\n").count ?? 0) >= 8
        }
        XCTAssertEqual(state(run)?.stages["V2/sample"]?.phase, .running)
        let status = try HerdBinary.run(["rlhf", "status", killed])
        XCTAssertTrue(status.out.contains("stopped (its scheduler died"), status.out)
        XCTAssertTrue(status.out.contains("finished"), status.out)
        // V3 may not start before V2 has finished.
        let early = try HerdBinary.run(["rlhf", "launch", killed, "--iteration", "3"])
        XCTAssertNotEqual(early.status, 0)
        XCTAssertTrue(early.err.contains("V3 cannot start: V2/sample has not finished"), early.err)

        // Resumed, then killed during V2's evaluation: the gate has not decided yet.
        try killWhen(["rlhf", "resume", killed]) { self.state(run)?.stages["V2/evaluate"]?.phase == .running }
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/V2/promotion.json"), "decided only after the evaluation")
        // Resumed, then killed again during V3's fine-tuning of the large policy, after a checkpoint.
        try killWhen(["rlhf", "resume", killed]) {
            ((try? String(contentsOfFile: run + "/V3/finetune-large/events.jsonl", encoding: .utf8)) ?? "").contains("\"checkpoint\"")
        }
        XCTAssertEqual(state(run)?.stages["V3/finetune-large"]?.phase, .running)
        XCTAssertEqual(state(run)?.stages["V2/sample"]?.attempts, 2, "V2's sampling ran again, once")
        XCTAssertEqual(state(run)?.stages["V2/evaluate"]?.attempts, 2, "V2's evaluation ran again, once")
        let resumed = try HerdBinary.run(["rlhf", "resume", killed])
        XCTAssertEqual(resumed.status, 0, resumed.out + resumed.err)
        XCTAssertTrue(resumed.out.contains("V2/sample: finished earlier"), resumed.out)
        XCTAssertTrue(resumed.out.contains("V1/finetune-small: finished earlier"), resumed.out)
        XCTAssertFalse(resumed.out.contains("V2/annotate: started"), "a finished stage is never redone")
        let log = try String(contentsOfFile: run + "/pipeline.log", encoding: .utf8)
        XCTAssertTrue(log.contains("V3/finetune-large: started (attempt 2, continuing its work)"), log)
        let events = try String(contentsOfFile: run + "/V3/finetune-large/events.jsonl", encoding: .utf8)
        XCTAssertTrue(events.contains("\"resume\""), "the fine-tuning continued from its checkpoint")
        // The same figures, bags and preference pool, but for the pipeline's name and run directory they record.
        func same(_ file: String) throws -> Bool {
            try String(contentsOfFile: run + file, encoding: .utf8).replacingOccurrences(of: "killed", with: "whole")
                == String(contentsOfFile: wholeRun + file, encoding: .utf8)
        }
        XCTAssertTrue(try same("/report.json"), "the resumed pipeline's report is the uninterrupted one's")
        XCTAssertTrue(try same("/report.md"))
        XCTAssertTrue(try same("/V2/bag.jsonl"), "the bag continued after the kill is the uninterrupted one")
        XCTAssertTrue(try same("/V3/bag.jsonl"))
        XCTAssertTrue(try same("/pool.jsonl"))
        for n in 1...3 { XCTAssertTrue(try same("/V\(n)/promotion.json"), "the gate decided V\(n) as the uninterrupted run did") }
        XCTAssertTrue(try String(contentsOfFile: run + "/report.md", encoding: .utf8).contains("## Promotion"))
    }

    /// A helpfulness reward model trained for one step, against a health
    /// threshold of 0.9: the iteration stops before sampling and says which
    /// model failed and by how much; with `otherwise: annotator` it goes on
    /// with the annotator choosing the samples.
    func testUnhealthyRewardModelStopsTheIterationBeforeSampling() throws {
        func weak(_ otherwise: String) -> (String) -> String {
            { $0.replacingOccurrences(of: "helpfulness: {data: {seq_len: 64, val_fraction: 0.25}, batch: {pairs: 4}, steps: 3",
                                      with: "helpfulness: {data: {seq_len: 64, val_fraction: 0.5}, batch: {pairs: 4}, steps: 1")
                .replacingOccurrences(of: "health: {held_out: 0, held_out_clear: 0,", with: "health: {held_out: 0.9, held_out_clear: 0, otherwise: \(otherwise),")
                .replacingOccurrences(of: "  - {annotate: 12, k: 4}\n  - {annotate: 12, k: 2, finetune: {steps: 400}}", with: "") }
        }
        let stop = try pipeline("unhealthy", change: weak("stop"))
        let run = Self.dir + "/run-unhealthy"
        let r = try HerdBinary.run(["rlhf", "launch", stop, "--iteration", "1"])
        XCTAssertNotEqual(r.status, 0, r.out)
        XCTAssertTrue(r.err.contains("V1/rm-health"), r.err)
        let health = try JSONDecoder().decode(RewardModelHealth.self, from: Data(contentsOf: URL(fileURLWithPath: run + "/V1/rm-health.json")))
        let failed = try XCTUnwrap(health.measures.first { $0.model == "helpfulness" && $0.measure == "held-out" })
        XCTAssertLessThan(failed.accuracy, 0.9)
        let log = try String(contentsOfFile: run + "/V1/rm-health.log", encoding: .utf8)
        XCTAssertTrue(log.contains(String(format: "the helpfulness reward model's held-out accuracy is %.3f, below 0.900", failed.accuracy)), log)
        XCTAssertNil(state(run)?.stages["V1/sample"], "the iteration stopped before sampling")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/V1/bag.jsonl"))
        let report = try String(contentsOfFile: run + "/report.md", encoding: .utf8)
        XCTAssertTrue(report.contains("| V1 | **below**: stopped |"), report)

        // (This one also mixes 5 of the SFT demonstrations into the round's fine-tuning data.)
        let fallBack = try pipeline("fallback") {
            weak("annotator")($0).replacingOccurrences(of: "finetune: {data:", with: "finetune: {with_demonstrations: {file: \(Self.dir)/world/demonstrations.jsonl, count: 5}, data:")
        }
        let f = try HerdBinary.run(["rlhf", "launch", fallBack, "--iteration", "1"])
        XCTAssertEqual(f.status, 0, f.out + f.err)
        let select = try XCTUnwrap(state(Self.dir + "/run-fallback")?.stages["V1/select"]?.command)
        XCTAssertTrue(select.contains("--by-annotator"), "the annotator chose V1's samples: \(select)")
        let data = try JSONLines.demonstrations(path: Self.dir + "/run-fallback/V1/selections.jsonl")
        XCTAssertEqual(data.suffix(5).map { $0.id.hasPrefix("earlier/") }, Array(repeating: true, count: 5), "five earlier demonstrations after the selections")
        XCTAssertFalse(data.dropLast(5).contains { $0.id.hasPrefix("earlier/") })
    }

    func testBadPipelinesAreRefusedBeforeAnyStage() throws {
        let cases: [(String, (String) -> String, String)] = [
            ("no-policy", { $0.replacingOccurrences(of: "{name: small, init: \(Self.dir)/policy}", with: "{name: small, init: \(Self.dir)/nowhere}") },
             "policies[1].init: no such policy"),
            ("no-rm", { $0.replacingOccurrences(of: "  init: \(Self.dir)/policy\n", with: "  init: \(Self.dir)/no-rm\n") },
             "reward_models.init: no such reward-model starting point"),
            ("no-prompts", { $0.replacingOccurrences(of: "held_out: \(Self.dir)/world/prompts-heldout.jsonl", with: "held_out: \(Self.dir)/missing.jsonl") },
             "prompts.held_out: no such prompt file"),
            ("bad-annotator", { $0.replacingOccurrences(of: "annotator: [/", with: "annotator: [\(Self.dir)/world/world.json, /") },
             "world.json is not an executable file"),
            ("bad-field", { $0.replacingOccurrences(of: "finetune: {data", with: "finetune: {optimizer: {lr: -1}, data") },
             "(finetune): optimizer.lr"),
            ("bad-stage", { $0.replacingOccurrences(of: "{annotate: 12, k: 4}", with: "{annotate: 12, k: 4, stages: [gatt]}") },
             "iterations[1].stages: stage gatt needs the pipeline's gatt section"),
            ("bad-ppo", { $0.replacingOccurrences(of: "{annotate: 12, k: 4}", with: "{annotate: 12, k: 4, stages: [ppo]}") + "\nppo: {ppo: {clip: 2}}\n" },
             "(ppo): ppo.clip"),
            ("ppo-rm", { $0 + "\nppo: {ppo: {safety: \(Self.dir)/policy}}\n" }, "ppo.ppo.safety: set by the pipeline"),
            ("ppo-size-rm", { $0.replacingOccurrences(of: "{name: small, init: \(Self.dir)/policy}", with: "{name: small, init: \(Self.dir)/policy, ppo: {ppo: {helpfulness: \(Self.dir)/policy}}}") },
             "policies[1].ppo.ppo.helpfulness: set by the pipeline"),
        ]
        for (name, change, message) in cases {
            let path = try pipeline(name, change: change)
            let r = try HerdBinary.run(["rlhf", "launch", path, "--iteration", "1"])
            XCTAssertEqual(r.status, 2, name)
            XCTAssertTrue(r.err.contains(message), "\(name): \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: Self.dir + "/run-\(name)/pipeline-state.json"), "\(name): nothing started")
        }
    }

    /// `stages: [ppo]`: each size's fine-tune is optimised with PPO against
    /// the iteration's reward models, and the iteration's policy (evaluated,
    /// and the next iteration's start) is the PPO run.
    func testPPOStageFollowsTheFineTunes() throws {
        let path = try pipeline("ppo") {
            $0.replacingOccurrences(of: "- {annotate: 12, k: 2}\n", with: "- {annotate: 12, k: 2, stages: [ppo]}\n")
                + "\nppo: {steps: 2, threads: 2, ppo: {rollouts: 4, mini_batch: 2, max_new_tokens: 8}}\n"
        }
        let r = try HerdBinary.run(["rlhf", "launch", path, "--iteration", "1"])
        XCTAssertEqual(r.status, 0, r.out + r.err)
        let run = Self.dir + "/run-ppo"
        let order = try XCTUnwrap(state(run)).stages.filter { $0.key.hasPrefix("V1/") }.sorted { $0.value.started < $1.value.started }.map(\.key)
        XCTAssertEqual(order.suffix(5), ["V1/finetune-large", "V1/finetune-small", "V1/ppo-large", "V1/ppo-small", "V1/evaluate"])
        for size in ["large", "small"] {
            XCTAssertEqual(CheckpointStore(runDirectory: "\(run)/V1/ppo-\(size)").latest(), 2)
            let job = try String(contentsOfFile: "\(run)/V1/ppo-\(size).yaml", encoding: .utf8)
            XCTAssertTrue(job.contains("init: \(run)/V1/finetune-\(size)"), job)
            XCTAssertTrue(job.contains("helpfulness: \(run)/V1/rm-helpfulness"), job)
        }
        XCTAssertTrue(try String(contentsOfFile: run + "/pipeline.log", encoding: .utf8).contains("--policy large=\(run)/V1/ppo-large"))
    }

    /// Every stage that is not a training job runs a typed command: its
    /// argv, parsed with the command line's own options, is the command it
    /// was written from — on both selection arms, with Ghost Attention (its
    /// annotator check) and PPO in the graph. A flag the pipeline writes that
    /// the command does not take fails here, not in a running pipeline.
    func testEveryStageCommandParsesBackIntoItsOptions() throws {
        let d = Self.dir
        var seen = Set<String>()
        for arm in ["reward_model", "annotator"] {
            let path = try pipeline("typed-\(arm)") { text in
                text.replacingOccurrences(of: "{annotate: 12, k: 2, finetune", with: "{annotate: 12, k: 2, stages: [gatt, ppo], finetune")
                    .replacingOccurrences(of: "on_policy_clear: 0}", with: "on_policy_clear: 0, otherwise: annotator, probe: {prompts: \(d)/world/probe-prompts.jsonl, pool: \(d)/world/probe-pool.jsonl}}")
                    .replacingOccurrences(of: "finetune: {data:", with: "finetune: {with_demonstrations: {file: \(d)/world/demonstrations.jsonl, count: 3}, data:")
                    + "\nselection: \(arm)\ngatt: {dialogues: \(d)/world/dialogues.jsonl, held_out: \(d)/world/dialogues-heldout.jsonl, from: 1, check: annotator}\n"
                    + "ppo: {steps: 2, ppo: {rollouts: 4, mini_batch: 2, max_new_tokens: 8}}\n"
            }
            let graph = PipelineGraph(manifest: try PipelineManifest.load(path: path))
            for n in 0...3 {
                for stage in try graph.stages(n) where !stage.isJob {
                    let type = try XCTUnwrap(StageCommands.all.first { $0.subcommand == Array(stage.arguments.prefix(2)) }, stage.id)
                    let parsed = try type.parse(Array(stage.arguments.dropFirst(2)))
                    XCTAssertEqual(parsed.arguments, stage.arguments, stage.id)
                    seen.insert(stage.arguments[1])
                }
            }
        }
        XCTAssertEqual(seen, Set(StageCommands.all.map { $0.subcommand[1] }), "every stage command appears in the graph")
    }

    /// A gatt section: from its first iteration, Ghost Attention's dialogues
    /// are sampled after the selection and join the fine-tuning data, and
    /// every evaluation measures instruction keeping per turn.
    func testGAttStageAddsItsDialoguesToTheFineTuning() throws {
        let d = Self.dir
        let path = try pipeline("gatt") { $0 + "\ngatt: {dialogues: \(d)/world/dialogues.jsonl, held_out: \(d)/world/dialogues-heldout.jsonl, from: 1}\n" }
        let r = try HerdBinary.run(["rlhf", "launch", path, "--iteration", "1"])
        XCTAssertEqual(r.status, 0, r.out + r.err)
        let run = d + "/run-gatt"
        let order = try XCTUnwrap(state(run)).stages.filter { $0.key.hasPrefix("V1/") }.sorted { $0.value.started < $1.value.started }.map(\.key)
        XCTAssertEqual(order.suffix(5), ["V1/select", "V1/gatt", "V1/finetune-large", "V1/finetune-small", "V1/evaluate"])
        let data = try JSONLines.demonstrations(path: run + "/V1/finetune-data.jsonl")
        let selections = try JSONLines.demonstrations(path: run + "/V1/selections.jsonl")
        XCTAssertEqual(Array(data.prefix(selections.count)), selections)
        XCTAssertEqual(data.count - selections.count, 6 * 3, "six dialogues of three turns: one demonstration a turn")
        XCTAssertTrue(data.dropFirst(selections.count).allSatisfy { $0.loss == .lastAnswer })
        XCTAssertTrue(try String(contentsOfFile: run + "/V1/finetune-large.yaml", encoding: .utf8).contains("finetune-data.jsonl"))
        for n in ["SFT", "V1"] {
            let e = try JSONDecoder().decode([String: PolicyEvaluation.Result].self, from: Data(contentsOf: URL(fileURLWithPath: "\(run)/\(n)/evaluation.json")))
            XCTAssertEqual(e["large"]?.instructionByTurn?.count, 3, n)
            // The per-turn shares are the kept turns' shares over the dialogues, which the intervals are drawn from.
            XCTAssertEqual(e["large"]?.instructionKept.map(InstructionFollowing.shares), e["large"]?.instructionByTurn, n)
        }
        XCTAssertTrue(try String(contentsOfFile: run + "/report.md", encoding: .utf8).contains("Ghost Attention"))
    }

    /// `herd rlhf gatt -- ANNOTATOR` keeps exactly the sampled turns the
    /// annotator says keep the instruction (here a script that passes the
    /// second turns only).
    func testGAttKeepsTheTurnsTheAnnotatorPasses() throws {
        let d = Self.dir, judge = d + "/second-turns.sh"
        try #"""
            #!/bin/sh
            while IFS= read -r line; do
              id=$(printf '%s' "$line" | sed 's/.*"id":"\([^"]*\)".*/\1/')
              case "$id" in *turn2) keep=true ;; *) keep=false ;; esac
              printf '{"id":"%s","helpfulness":4,"safety":5,"instruction":%s}\n' "$id" "$keep"
            done
            """#.write(toFile: judge, atomically: true, encoding: .utf8)
        chmod(judge, 0o755)
        let args = ["rlhf", "gatt", "--policy", d + "/policy", "--dialogues", d + "/world/dialogues.jsonl", "--max-new-tokens", "12"]
        XCTAssertEqual(try HerdBinary.run(args + ["--out", d + "/gatt-all.jsonl"]).status, 0)
        let r = try HerdBinary.run(args + ["--out", d + "/gatt-checked.jsonl", "--", judge])
        XCTAssertEqual(r.status, 0, r.err)
        let all = try JSONLines.demonstrations(path: d + "/gatt-all.jsonl")
        XCTAssertEqual(all.count, 6 * 3)
        XCTAssertEqual(try JSONLines.demonstrations(path: d + "/gatt-checked.jsonl"), all.filter { $0.id.hasSuffix("turn2") })
    }

    /// With --cluster the training stages run through the coordinator: each a job in the store.
    func testTrainingStagesAreStoredJobsOnACluster() throws {
        let path = try pipeline("clustered")
        var env = ProcessInfo.processInfo.environment
        env["HERD_HOME"] = Self.dir + "/herd-home"
        let r = try HerdBinary.run(["rlhf", "launch", path, "--iteration", "1", "--cluster", "local"], environment: env)
        XCTAssertEqual(r.status, 0, r.out + r.err)
        XCTAssertTrue(r.out.contains("herd run \(Self.dir)/run-clustered/V1/rm-helpfulness.yaml --cluster /"), r.out)
        let status = try HerdBinary.run(["status"], environment: env)
        for stage in ["rm-helpfulness", "rm-safety", "finetune-large", "finetune-small"] {
            XCTAssertTrue(status.out.contains("\(Self.dir)/run-clustered/V1/\(stage)"), status.out)
        }
        XCTAssertEqual(status.out.components(separatedBy: "succeeded").count - 1, 4, status.out)
    }

    /// The paper-scale pipeline priced stage by stage (nothing of it is on this machine).
    func testPaperScalePipelineIsPricedStageByStage() throws {
        let m = try PipelineManifest.load(path: "jobs/rlhf-llama2.yaml", checkFiles: false)
        let plan = try PipelinePlan.make(manifest: m, cluster: try ClusterSpec.load(path: "clusters/a100-2048.yaml"))
        // Per iteration: annotate, (rm-on-policy from V2), two reward models, sample, (gatt from V3), three
        // fine-tunes, (three PPO runs in V5), evaluate.
        XCTAssertEqual(plan.stages.count, 5 * 8 + 4 + 3 + 3)
        XCTAssertEqual(plan.stages.filter { $0.id.hasSuffix("/gatt") }.map(\.id), ["V3/gatt", "V4/gatt", "V5/gatt"])
        XCTAssertEqual(try XCTUnwrap(plan.stages.first { $0.id == "V3/gatt" }).tokens, 10000 * 4 * 256, "dialogues × turns × answer tokens")
        let ppo7 = try XCTUnwrap(plan.stages.first { $0.id == "V5/ppo-7b" }), ppo70 = try XCTUnwrap(plan.stages.first { $0.id == "V5/ppo-70b" })
        XCTAssertEqual(ppo7.ranks, 512, "data 64 × tensor 8")
        XCTAssertEqual(ppo7.tokens, 200 * 512 * (512 + 256), "iterations × rollouts × (prompt + answer)")
        XCTAssertGreaterThan(ppo7.bytesPerRank, 4 * 6.7e9 / 8, "at least the policy's tensor shard, gathered whole for the rollouts")
        XCTAssertFalse(ppo70.note.contains("does not fit"), ppo70.note)
        XCTAssertTrue(ppo70.note.contains("s an iteration: rollout"), ppo70.note)
        let sample = try XCTUnwrap(plan.stages.first { $0.id == "V1/sample" })
        XCTAssertEqual(sample.tokens, 20000 * 10 * 256, "prompts × K × answer tokens")
        XCTAssertEqual(sample.ranks, 2048)
        XCTAssertTrue(sample.note.contains("generation groups of"), sample.note)
        let rm1 = try XCTUnwrap(plan.stages.first { $0.id == "V1/rm-helpfulness" }), rm5 = try XCTUnwrap(plan.stages.first { $0.id == "V5/rm-helpfulness" })
        XCTAssertEqual(rm5.tokens / rm1.tokens, 5, accuracy: 0.01, "retrained on a pool five times larger")
        XCTAssertFalse(try XCTUnwrap(plan.stages.first { $0.id == "V1/finetune-70b" }).note.contains("does not fit"))
        XCTAssertFalse(try XCTUnwrap(plan.stages.first { $0.id == "V1/finetune-7b" }).note.contains("does not fit"))
        XCTAssertTrue(plan.text.contains("in all:"), plan.text)
    }
}
