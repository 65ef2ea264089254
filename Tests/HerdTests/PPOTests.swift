import XCTest
import Foundation
import Herd

/// PPO as a job (`kind: ppo`), end to end on a tiny byte-level policy and a
/// briefly trained reward model: a run SIGKILLed mid-way and resumed ends
/// with the same policy and value model, bit for bit, as an uninterrupted
/// one; one and two MPI ranks compute the same iterations; bad manifests
/// are refused before anything starts, naming the field.
final class PPOTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-ppo-\(getpid())"

    override class func setUp() {
        prepare {
            try HerdBinary.pretrainTinyPolicy(dir: dir, output: dir + "/policy", steps: 20)
            try HerdBinary.tinyRewardModelAndPrompts(dir: dir, prompts: 10)
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A PPO job manifest writing RUN on data × tensor ranks (`parallelism`'s
    /// other fields in `layout`); `extra` lines are appended.
    func job(_ name: String, steps: Int = 6, data: Int = 1, tensor: Int = 1, layout: String = "", ppo: String = "",
             extra: String = "") throws -> (path: String, run: String) {
        let d = Self.dir, run = "\(d)/run-\(name)"
        let text = """
            kind: ppo
            seed: 5
            init: \(d)/policy
            data: {prompts: \(d)/prompts.jsonl}
            ppo: {helpfulness: \(d)/rm, safety: \(d)/rm, rollouts: 8, mini_batch: 4, beta: 0.05, max_new_tokens: 12\(ppo)}
            optimizer: {lr: 1e-3}
            parallelism: {data: \(data), tensor: \(tensor)\(layout)}
            steps: \(steps)
            threads: \(data * tensor == 1 ? 2 : 1)
            checkpoint: {interval: 1, keep: 2}
            output: \(run)
            \(extra)
            """
        let path = "\(d)/\(name).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, run)
    }

    /// The policy's (or value model's) weights at the run's latest checkpoint.
    func weights(_ run: String) throws -> [String: [Float]] {
        try ModelFiles.weights(checkpoint: ModelFiles.checkpointDirectory(run)).tensors
    }

    func steps(_ run: String) throws -> [RunEvent] {
        try RunDirectory(run).readEvents().filter { $0.event == .step }
    }

    func testKilledPPOJobResumesToTheSamePolicy() throws {
        let whole = try job("whole")
        let r = try HerdBinary.run(["run", whole.path])
        XCTAssertEqual(r.status, 0, r.err)
        let events = try steps(whole.run)
        XCTAssertEqual(events.count, 6)
        let last = try XCTUnwrap(events.last)
        for (key, value) in [("reward", last.reward), ("kl", last.kl), ("policy_loss", last.policyLoss), ("value_loss", last.valueLoss),
                             ("clip_fraction", last.clipFraction), ("entropy", last.entropy), ("response_length", last.responseLength)] {
            XCTAssertNotNil(value, "the step event lacks \(key)")
        }
        XCTAssertNotEqual(try weights(whole.run), try ModelFiles.weights(checkpoint: ModelFiles.checkpointDirectory(Self.dir + "/policy")).tensors,
                          "six PPO iterations did not move the policy")

        let killed = try job("killed")
        let (p, _, _) = try HerdBinary.start(["run", killed.path])
        let deadline = Date().addingTimeInterval(120)
        while (CheckpointStore(runDirectory: killed.run).latest() ?? 0) < 2 && p.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(p.isRunning, "the job ended before the moment to kill it")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let at = CheckpointStore(runDirectory: killed.run).latest() ?? 0
        XCTAssertLessThan(at, 6, "the kill came after the last iteration")
        let resumed = try HerdBinary.run(["run", killed.path])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.out.contains("resumed at PPO iteration \(at)"), resumed.out)
        XCTAssertEqual(try weights(killed.run), try weights(whole.run), "the resumed policy differs from the uninterrupted one")
        XCTAssertEqual(try weights(killed.run + "/value"), try weights(whole.run + "/value"), "the resumed value model differs")
        let a = try steps(whole.run).last!, b = try steps(killed.run).last!
        XCTAssertEqual(a.reward, b.reward)
        XCTAssertEqual(a.kl, b.kl)
    }

    func testOneAndTwoMPIRanksComputeTheSameIterations() throws {
        try expectSameIterations(try job("one", steps: 2), try job("two", steps: 2, data: 2), steps: 2)
    }

    /// The policy and the value model split over a tensor group (with
    /// sequence parallelism and recomputation), and at (data, tensor) =
    /// (2, 2) with ZeRO-3 — the frozen models split and sharded alike, the
    /// weights consolidated once for the rollouts — follow one process
    /// within 1e-4 over 5 iterations.
    func testTensorParallelAndShardedPPOFollowOneProcess() throws {
        let one = try job("layout-1x1", steps: 5)
        try run(one)
        try expectSameIterations(one, try job("layout-1x2", steps: 5, tensor: 2, layout: ", sequence_parallel: true",
                                                    extra: "activation_checkpoint: full"),
                                 steps: 5, runFirst: false)
        try expectSameIterations(one, try job("layout-2x2", steps: 5, data: 2, tensor: 2, layout: ", zero: 3",
                                                    extra: "activation_checkpoint: selective"),
                                 steps: 5, runFirst: false)
    }

    /// bf16: products on bf16-rounded weights and activations, fp32 master
    /// weights, the frozen models in bf16 too. The first iteration's
    /// rollouts are the same (generation reads the fp32 weights); its
    /// rewards and losses stay near fp32's, and 3 iterations move the
    /// policy in nearly the same direction — not exactly, so the setting
    /// is in effect.
    func testBF16PPOStaysNearFP32() throws {
        let fp32 = try job("fp32", steps: 3), bf16 = try job("bf16", steps: 3, extra: "precision: bf16")
        try run(fp32)
        try run(bf16)
        let a = try steps(fp32.run), b = try steps(bf16.run)
        XCTAssertEqual(a.count, 3)
        XCTAssertEqual(b.count, 3)
        XCTAssertEqual(a[0].responseLength, b[0].responseLength, "the same rollouts")
        XCTAssertEqual(a[0].reward!, b[0].reward!, accuracy: 1e-3, "bf16 reward models")
        for field in [\RunEvent.policyLoss, \.valueLoss] {
            let u = a[0][keyPath: field]!, v = b[0][keyPath: field]!
            XCTAssertEqual(u, v, accuracy: 0.05 * abs(u) + 1e-3)
        }
        // The cosine of the two policies' moves from the starting weights.
        let start = try ModelFiles.weights(checkpoint: ModelFiles.checkpointDirectory(Self.dir + "/policy")).tensors
        let wa = try weights(fp32.run), wb = try weights(bf16.run)
        var dot = 0.0, na = 0.0, nb = 0.0
        for (name, w0) in start {
            for i in w0.indices {
                let x = Double(wa[name]![i] - w0[i]), y = Double(wb[name]![i] - w0[i])
                dot += x * y; na += x * x; nb += y * y
            }
        }
        let cosine = dot / (na * nb).squareRoot()
        XCTAssertGreaterThan(cosine, 0.9)
        XCTAssertLessThan(cosine, 1 - 1e-9, "bf16 changed nothing")
    }

    /// The reference and both reward models on 2 ranks of their own, split
    /// by tensor parallelism, scoring what 2 data ranks send them: the same
    /// iterations as all of them on one process.
    func testFrozenModelsOnTheirOwnRanksScoreAsColocated() throws {
        let one = try job("colocated", steps: 3)
        let apart = try job("apart", steps: 3, data: 2, ppo: ", placement: separate, frozen_ranks: 2")
        try expectSameIterations(one, apart, steps: 3)
        let plan = try Plan.read(RunDirectory(apart.run).plan)
        XCTAssertEqual(plan.world, 4, "2 trainers and 2 frozen-model ranks")
        XCTAssertEqual(plan.ranks.filter(\.holdsFrozenModels).map(\.rank), [2, 3])
        XCTAssertTrue(output.contains("frozen models on 2 rank(s) of their own"), output)
    }

    /// The last job's output.
    var output = ""

    func run(_ j: (path: String, run: String)) throws {
        let r = try HerdBinary.run(["run", j.path])
        XCTAssertEqual(r.status, 0, r.out + r.err)
        output = r.out
    }

    /// Runs both jobs (the first unless it has run) and compares their step events and final weights.
    func expectSameIterations(_ one: (path: String, run: String), _ two: (path: String, run: String), steps n: Int, runFirst: Bool = true) throws {
        for j in runFirst ? [one, two] : [two] { try run(j) }
        let a = try steps(one.run), b = try steps(two.run)
        XCTAssertEqual(a.count, n)
        XCTAssertEqual(b.count, n)
        for (x, y) in zip(a, b) {
            for (key, field) in [("reward", \RunEvent.reward), ("kl", \.kl), ("response_length", \.responseLength),
                                 ("policy_loss", \.policyLoss), ("value_loss", \.valueLoss)] {
                let u = x[keyPath: field]!, v = y[keyPath: field]!
                XCTAssertEqual(u, v, accuracy: 1e-4 * max(1, abs(u)), "\(key) at step \(x.step!)")
            }
        }
        let wa = try weights(one.run), wb = try weights(two.run)
        for (name, t) in wa {
            let u = wb[name]!
            let err = zip(t, u).map { abs($0 - $1) }.max()!, scale = t.map(abs).max()!
            XCTAssertLessThanOrEqual(err, 1e-4 * max(scale, 1e-3), "\(name) differs between one and two ranks")
        }
    }

    /// Under the coordinator on two mpirun ranks, `herd watch` shows the last PPO iteration's figures.
    func testWatchShowsPPOFiguresOfAJobOnACluster() throws {
        let j = try job("watched", steps: 2, data: 2)
        var env = ProcessInfo.processInfo.environment
        env["HERD_HOME"] = Self.dir + "/herd-home"
        let r = try HerdBinary.run(["run", j.path, "--cluster", "local"], environment: env)
        XCTAssertEqual(r.status, 0, r.out + r.err)
        let watch = try HerdBinary.run(["watch", "1", "--once"], environment: env)
        XCTAssertTrue(watch.out.contains("succeeded"), watch.out)
        let line = try XCTUnwrap(watch.out.split(separator: "\n").first { $0.hasPrefix("PPO: reward ") }, watch.out)
        let last = try XCTUnwrap(try steps(j.run).last)
        XCTAssertTrue(line.contains(String(format: "KL %.4f", last.kl!)), "\(line) against \(last)")
    }

    /// The frozen reward models score a block of answers in one padded
    /// forward: each score as the answer's own forward gives it.
    func testBatchedRewardsEqualOneAtATime() throws {
        let rm = try ModelFiles.loadModel(Self.dir + "/rm")
        let sequences: [[TokenID]] = [[1, 72, 101, 108], [1, 72], [1, 80, 81, 82, 83, 84, 85], Array(repeating: 90, count: 300)]
        let batched = rm.rewards(tokens: sequences)
        XCTAssertEqual(batched.count, 4)
        for (s, r) in zip(sequences, batched) { XCTAssertEqual(r, rm.reward(tokens: s), accuracy: 1e-5 * max(1, abs(r))) }
        XCTAssertNotEqual(batched[0], batched[1])
    }

    func testBadPPOJobsAreRefusedNamingTheField() throws {
        let cases: [(String, String, String)] = [
            ("no-safety", "ppo: {helpfulness: \(Self.dir)/rm}", "ppo.safety"),
            ("policy-as-rm", "ppo: {helpfulness: \(Self.dir)/policy, safety: \(Self.dir)/rm}", "not a reward model"),
            ("mini-batch", "ppo: {helpfulness: \(Self.dir)/rm, safety: \(Self.dir)/rm, rollouts: 8, mini_batch: 3}", "ppo.mini_batch"),
            ("tensor", "parallelism: {tensor: 3}", "parallelism.tensor"),
            ("batch", "batch: {sequences: 8}", "ppo.rollouts"),
            ("prompts", "data: {prompts: \(Self.dir)/nothing.jsonl}", "data.prompts"),
        ]
        for (name, line, expected) in cases {
            var (path, run) = try job(name)
            // Replace the section the case is about.
            let key = String(line.prefix { $0 != ":" })
            let text = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
                .filter { !$0.hasPrefix(key + ":") }.joined(separator: "\n") + "\n" + line + "\n"
            path = Self.dir + "/bad-\(name).yaml"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let r = try HerdBinary.run(["run", path])
            XCTAssertEqual(r.status, 2, "\(name): \(r.out)")
            XCTAssertTrue(r.err.contains(expected), "\(name): \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: run), "\(name): a run directory was written")
        }
    }
}
