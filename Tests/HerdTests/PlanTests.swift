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
        // At 40% of the A100's 312 TFLOP/s, the FLOP counts give GPU-hours
        // within 11% of the paper's table 2 (184,320 / 368,640 / 1,720,320).
        for (size, paper) in [("7b", 184_320.0), ("13b", 368_640.0), ("70b", 1_720_320.0)] {
            let r = try report("jobs/llama2-\(size).yaml", "clusters/a100-2048.yaml")
            XCTAssertEqual(r.plan.world, 2048)
            XCTAssertEqual(r.plan.sequencesPerRank, 4, "1024 sequences of 4096 tokens over 256 data ranks")
            XCTAssertEqual(r.slotHours / paper, 1, accuracy: 0.11, size)
            XCTAssertEqual(r.plan.ranks[9].host, "a100-1", "ranks fill nodes of 8 in order")
        }
        XCTAssertNil(try report("jobs/llama2-7b.yaml", "clusters/a100-2048.yaml").memoryProblem)
        XCTAssertNotNil(try report("jobs/llama2-70b.yaml", "clusters/a100-2048.yaml").memoryProblem,
                        "70B in fp32 with tensor 8 does not fit 80 GB in Herd")
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
        let bad = try HerdBinary.run(["plan", "jobs/llama2-70b.yaml", "--cluster", "clusters/a100-2048.yaml"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("each rank needs"), bad.err)
    }
}
