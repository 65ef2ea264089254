import XCTest
import Foundation
import Herd

/// `herd plan`: cluster files, placement, memory and time estimates.
final class PlanTests: XCTestCase {
    func report(_ job: String, _ cluster: String) throws -> PlanReport {
        let m = try JobManifest.load(path: job, overrides: .init(planOnly: true))
        return try PlanReport.make(manifest: m, model: m.model.config, cluster: try ClusterSpec.load(path: cluster))
    }

    func testLlama2EstimatesAgainstThePapersGPUHours() throws {
        // At 42% of the A100's 312 TFLOP/s for the FLOPs Herd counts (39–41%
        // model FLOPs utilisation), GPU-hours within 10% of the paper's
        // Table 2 (184,320 / 368,640 / 1,720,320), every rank within 80 GB —
        // and the layout search finds a layout as fast by itself.
        for (size, paper) in [("7b", 184_320.0), ("13b", 368_640.0), ("70b", 1_720_320.0)] {
            let r = try report("jobs/llama2-\(size).yaml", "clusters/a100-2048.yaml")
            XCTAssertEqual(r.plan.world, 2048)
            XCTAssertEqual(r.plan.sequencesPerRank, 4, "1024 sequences of 4096 tokens over 256 data ranks")
            XCTAssertEqual(r.slotHours / paper, 1, accuracy: 0.10, size)
            XCTAssertEqual(r.modelFLOPsUtilization, 0.4, accuracy: 0.02, size)
            XCTAssertEqual(r.plan.ranks[9].host, "a100-1", "ranks fill nodes of 8 in order")
            XCTAssertNil(r.memoryProblem, size)
            XCTAssertLessThanOrEqual(r.totalBytesPerRank, 80e9, size)
            let m = try JobManifest.load(path: "jobs/llama2-\(size).yaml", overrides: .init(planOnly: true))
            let best = try XCTUnwrap(LayoutSearch.candidates(manifest: m, model: m.model.config,
                                                             cluster: try ClusterSpec.load(path: "clusters/a100-2048.yaml")).first)
            XCTAssertTrue(best.fits, size)
            XCTAssertEqual(best.report.slotHours / paper, 1, accuracy: 0.10, "\(size): \(best.line)")
        }
        // Their fine-tuning and reward-model jobs fit too.
        for job in ["7b-sft", "13b-sft", "70b-sft", "7b-rm", "13b-rm", "70b-rm"] {
            let r = try report("jobs/llama2-\(job).yaml", "clusters/a100-2048.yaml")
            XCTAssertNil(r.memoryProblem, job)
        }
        // Without ZeRO-3 and selective recomputation 70B does not fit; the
        // search knows and leaves such layouts last.
        let m = try JobManifest.load(path: "jobs/llama2-70b.yaml", overrides: .init(planOnly: true))
        var plain = m
        plain.parallelism.zero = 1
        plain.activationCheckpoint = .none
        let cluster = try ClusterSpec.load(path: "clusters/a100-2048.yaml")
        XCTAssertNotNil(try PlanReport.make(manifest: plain, model: m.model.config, cluster: cluster).memoryProblem)
        let all = try LayoutSearch.candidates(manifest: plain, model: m.model.config, cluster: cluster)
        let best = try XCTUnwrap(all.first)
        XCTAssertTrue(best.roomy, best.line)
        XCTAssertEqual(best.zero, 3, best.line)
        XCTAssertTrue(best.sequenceParallel, best.line)
        XCTAssertFalse(try XCTUnwrap(all.last).fits)
    }

    /// The paper's RLHF pipeline on its cluster: every stage of V1..V5
    /// within a slot's 80 GB — the 70B reward models and fine-tune with
    /// ZeRO-3, PPO as it runs (every model ZeRO-3-sharded, the policy's
    /// tensor shard gathered whole for the rollouts only) — and PPO would
    /// not fit at ZeRO-1, every model's weights whole on each rank.
    func testPaperPipelineFitsEveryStage() throws {
        let cluster = try ClusterSpec.load(path: "clusters/a100-2048.yaml")
        let slot = try XCTUnwrap(cluster.nodes[0].deviceMemoryGB) * 1e9
        let text = try String(contentsOfFile: "jobs/rlhf-llama2.yaml", encoding: .utf8)
        func plan(_ yaml: String) throws -> PipelinePlan {
            try PipelinePlan.make(manifest: try PipelineManifest.parse(yaml: yaml, file: "jobs/rlhf-llama2.yaml", checkFiles: false), cluster: cluster)
        }
        let p = try plan(text)
        for st in p.stages {
            XCTAssertLessThanOrEqual(st.bytesPerRank, slot, "\(st.id): \(st.note)")
            XCTAssertFalse(st.note.contains("does not fit"), "\(st.id): \(st.note)")
        }
        let ppo = try XCTUnwrap(p.stages.first { $0.id == "V5/ppo-70b" }), phases = try XCTUnwrap(ppo.ppo)
        XCTAssertEqual(phases.peak.phase, .rollout, phases.text)
        XCTAssertGreaterThan(phases.consolidated, 4 * 68e9 / 8, "the policy's whole tensor shard, fp32")
        XCTAssertEqual(ppo.seconds, 200 * phases.secondsPerIteration, accuracy: 1e-6 * ppo.seconds)
        for part in [phases.rolloutSeconds, phases.scoringSeconds, phases.updateSeconds] { XCTAssertGreaterThan(part, 0) }
        XCTAssertTrue(try XCTUnwrap(p.comparison).contains("the paper: ≈330 s"), p.text)
        XCTAssertTrue(p.text.contains(try XCTUnwrap(p.comparison)))

        let layout = "parallelism: {data: 64, tensor: 8, sequence_parallel: true, zero: 3}"
        XCTAssertTrue(text.contains(layout), "the PPO template's layout changed: update this test")
        let zero1 = try plan(text.replacingOccurrences(of: layout, with: layout.replacingOccurrences(of: "zero: 3", with: "zero: 1")))
        let unsharded = try XCTUnwrap(zero1.stages.first { $0.id == "V5/ppo-70b" })
        XCTAssertGreaterThan(unsharded.bytesPerRank, max(slot, ppo.bytesPerRank))
        XCTAssertTrue(unsharded.note.contains("does not fit"), unsharded.note)

        // The frozen models on 8 ranks of their own: off the trainers, who
        // hold less; the group holds the three 70B models split 8 ways and
        // scores every rollout, so scoring takes longer than on all 512.
        let settings = "ppo: {rollouts: 512, mini_batch: 64, beta: 0.01, max_new_tokens: 256}"
        XCTAssertTrue(text.contains(settings), "the PPO template's settings changed: update this test")
        let apart = try plan(text.replacingOccurrences(of: settings, with: settings.dropLast() + ", placement: separate, frozen_ranks: 8}"))
        let separate = try XCTUnwrap(apart.stages.first { $0.id == "V5/ppo-70b" }), split = try XCTUnwrap(separate.ppo)
        XCTAssertEqual(separate.ranks, ppo.ranks + 8)
        XCTAssertEqual(split.reference + split.rewardModels, 0)
        XCTAssertLessThan(split.peak.memory.total, phases.peak.memory.total)
        let group = try XCTUnwrap(split.frozenGroup)
        XCTAssertEqual(group.memory.weights, 3 * 4 * 69e9 / 8, accuracy: 0.03 * group.memory.weights, "three 70B models, fp32, split 8 ways")
        XCTAssertGreaterThan(split.scoringSeconds, phases.scoringSeconds)
        XCTAssertTrue(separate.note.contains("on ranks of their own"), separate.note)
    }

    /// `--suggest` lays out a PPO job too: each layout's micro-batch is a
    /// data rank's share of the mini-batch, priced by phase; a 70B job on
    /// 512 ranks fits only at ZeRO-3.
    func testSuggestLaysOutAPPOJob() throws {
        let yaml = PPOManifests.paperScale(model: "llama2-70b", ppo: ", max_new_tokens: 256", parallelism: "{data: 64, tensor: 8}")
        let m = try JobManifest.parse(yaml: yaml, file: "ppo.yaml", overrides: .init(planOnly: true))
        let all = try LayoutSearch.candidates(manifest: m, model: m.model.config, cluster: try ClusterSpec.load(path: "clusters/a100-2048.yaml"))
        XCTAssertFalse(all.isEmpty)
        for c in all { XCTAssertEqual(c.report.plan.data * c.tensor, 512); XCTAssertNotNil(c.report.ppo, c.line) }
        let best = try XCTUnwrap(all.first)
        XCTAssertTrue(best.fits, best.line)
        XCTAssertEqual(best.zero, 3, best.line)
        XCTAssertTrue(all.filter(\.fits).allSatisfy { $0.zero == 3 }, all.map(\.line).joined(separator: "\n"))
    }

    /// A cluster's memory bandwidth is optional and, when given, a positive number.
    func testMemoryBandwidthIsParsed() throws {
        let head = "name: c\nlauncher: mpirun\nnodes:\n  - {hosts: [h], slots: 1, cores: 1, memory_gb: 1, peak_tflops: 1"
        XCTAssertNil(try ClusterSpec.parse(yaml: head + "}\n", file: "c.yaml").nodes[0].memoryBandwidthGBs)
        XCTAssertEqual(try ClusterSpec.parse(yaml: head + ", memory_bandwidth_gbs: 2039}\n", file: "c.yaml").nodes[0].memoryBandwidthGBs, 2039)
        XCTAssertThrowsError(try ClusterSpec.parse(yaml: head + ", memory_bandwidth_gbs: fast}\n", file: "c.yaml")) { e in
            XCTAssertEqual((e as? ManifestError)?.field, "nodes[0].memory_bandwidth_gbs", "\(e)")
        }
    }

    /// The 0.95B model two ranks of this machine train with ZeRO-3 and full
    /// recomputation does not fit without them.
    func testABillionParametersFitTwoRanksHereOnlySharded() throws {
        let cluster = try ClusterSpec.load(path: "clusters/local.yaml")
        let m = try JobManifest.load(path: "jobs/llama2-1b-zero3.yaml", overrides: .init(planOnly: true))
        let model = try ResolvedJob.shape(of: m).0
        XCTAssertEqual(Double(model.parameterCount), 0.95e9, accuracy: 0.01e9)
        XCTAssertNil(try PlanReport.make(manifest: m, model: model, cluster: cluster).memoryProblem)
        var plain = m
        plain.parallelism.zero = 0
        plain.activationCheckpoint = .none
        let refused = try PlanReport.make(manifest: plain, model: model, cluster: cluster)
        XCTAssertTrue(try XCTUnwrap(refused.memoryProblem).contains("raise parallelism.zero"), refused.memoryProblem ?? "")
    }

    /// The plan's bytes per rank against the peak resident memory every rank
    /// measured: eleven layouts of a 106M-parameter model crossing
    /// recomputation, ZeRO stage, tensor degree, sequence parallelism and
    /// precision, each within 10%.
    func testPlannedMemoryAgreesWithEveryRanksPeak() throws {
        try HerdBinary.requireBinary()
        let dir = NSTemporaryDirectory() + "herd-plan-memory-\(getpid())"
        try HerdBinary.writeCorpus(in: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for c in MemoryAgreement.cases {
            // Two cores, as CI's, whatever this machine has: OpenBLAS's per-thread buffers are not in the plan.
            let r = try MemoryAgreement.measure(c, cores: 2, corpus: dir + "/corpus.txt",
                                                workDir: dir, herd: HerdBinary.path)
            XCTAssertLessThanOrEqual(r.error, 0.10, "\(c): planned \(r.planned.parts) GB, measured \(r.measuredMin / 1e9)–\(r.measuredMax / 1e9) GB")
        }
    }

    func testLayoutsThatDoNotFitAreRefused() throws {
        let dir = NSTemporaryDirectory() + "herd-plan-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = try String(contentsOfFile: "jobs/llama2-7b.yaml", encoding: .utf8)
        try job.replacingOccurrences(of: "data: 256", with: "data: 512").write(toFile: dir + "/big.yaml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try report(dir + "/big.yaml", "clusters/a100-2048.yaml")) { e in
            XCTAssertTrue("\(e)".contains("clusters/a100-2048.yaml: nodes: the job needs 4096 ranks"), "\(e)")
        }
        try "launcher: kubernetes\nnodes: [{count: 1, slots: 2, cores: 2, memory_gb: 8, peak_tflops: 1}]\n"
            .write(toFile: dir + "/k8s.yaml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ClusterSpec.load(path: dir + "/k8s.yaml")) { e in
            XCTAssertEqual("\(e)", "\(dir)/k8s.yaml: launcher: unknown launcher \"kubernetes\"; expected one of: mpirun, slurm")
        }
        try "launcher: slurm\nnodes: [{count: 1, slots: 2, cores: 2, memory_gb: 8, peak_tflops: 1}]\n"
            .write(toFile: dir + "/nopart.yaml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ClusterSpec.load(path: dir + "/nopart.yaml")) { XCTAssertTrue("\($0)".contains("partition: required")) }
        // How ranks start inside a Slurm allocation, and what the launcher's commands run under.
        let node = "nodes: [{count: 1, slots: 2, cores: 2, memory_gb: 8, peak_tflops: 1}]\n"
        for (name, text, message) in [
            ("step-mpirun", "launcher: mpirun\nstep_launcher: srun\n", "step_launcher: for the slurm launcher: mpirun or srun (how the batch job starts its ranks), got \"srun\""),
            ("step-bad", "launcher: slurm\npartition: debug\nstep_launcher: ssh\n", "step_launcher: for the slurm launcher: mpirun or srun (how the batch job starts its ranks), got \"ssh\""),
            ("prefix", "launcher: slurm\npartition: debug\nlauncher_prefix: [/nonexistent/wrapper, head]\n", "launcher_prefix: /nonexistent/wrapper is not an executable file"),
        ] {
            try (text + node).write(toFile: dir + "/\(name).yaml", atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try ClusterSpec.load(path: dir + "/\(name).yaml")) { e in
                XCTAssertTrue("\(e)".hasPrefix("\(dir)/\(name).yaml: " + message), "\(e)")
            }
        }
        let slurm = try ClusterSpec.load(path: "clusters/sim-3-slurm.yaml")
        XCTAssertEqual(slurm.stepLauncher, .srun)
        XCTAssertEqual(slurm.launcherPrefix, ["scripts/herd-sim", "exec", "head"])
    }

    /// Slurm chooses the nodes: the plan's k-th host becomes the allocation's
    /// k-th node, so a tensor group stays on one node; a different count is refused.
    func testAllocationIsReadBackIntoThePlan() throws {
        let m = try JobManifest.load(path: "jobs/tiny-3x2.yaml", overrides: .init(planOnly: true))
        let plan = try PlanReport.make(manifest: m, model: m.model.config, cluster: try ClusterSpec.load(path: "clusters/sim-3-slurm.yaml")).plan
        XCTAssertEqual(plan.ranks.map(\.host), ["node-0", "node-0", "node-1", "node-1", "node-2", "node-2"])
        XCTAssertEqual(SlurmAllocation.ranksPerNode(plan), 2)
        let placed = try SlurmAllocation.place(plan, on: ["c7", "c2", "c9"], job: "41")
        XCTAssertEqual(placed.ranks.map(\.host), ["c7", "c7", "c2", "c2", "c9", "c9"])
        XCTAssertEqual(placed.allocation, "41")
        XCTAssertEqual(placed.ranks.map(\.shard), plan.ranks.map(\.shard))
        XCTAssertEqual(SlurmAllocation.describe(placed), "ranks 0-1 on c7, ranks 2-3 on c2, ranks 4-5 on c9")
        XCTAssertThrowsError(try SlurmAllocation.place(plan, on: ["c7", "c2"], job: "42")) { e in
            XCTAssertEqual("\(e)", "Slurm job 42 was given 2 node(s) (c7, c2), the plan places its ranks on 3")
        }
    }

    func testPlanCommandOnThisMachine() throws {
        // The demo's job: its corpus is Debian's fortunes, which make setup installs (../shared may not be beside a clone).
        let r = try HerdBinary.run(["plan", "jobs/demo.yaml", "--cluster", "clusters/local.yaml"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("memory per rank:"), r.out)
        XCTAssertTrue(r.out.contains("rank 0 on localhost"), r.out)
        // The billion-parameter job without ZeRO-3 and recomputation does not fit here.
        let dir = NSTemporaryDirectory() + "herd-plan-cmd-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try (try String(contentsOfFile: "jobs/llama2-1b-zero3.yaml", encoding: .utf8))
            .replacingOccurrences(of: "zero: 3", with: "zero: 0").replacingOccurrences(of: "activation_checkpoint: full", with: "")
            .write(toFile: dir + "/plain.yaml", atomically: true, encoding: .utf8)
        let bad = try HerdBinary.run(["plan", dir + "/plain.yaml", "--cluster", "clusters/local.yaml"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("each rank needs"), bad.err)
        let suggested = try HerdBinary.run(["plan", dir + "/plain.yaml", "--cluster", "clusters/local.yaml", "--suggest"])
        XCTAssertEqual(suggested.status, 0, suggested.err)
        XCTAssertTrue(suggested.out.contains("the best one's plan"), suggested.out)
    }
}
