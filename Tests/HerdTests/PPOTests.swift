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

    /// A PPO job manifest writing RUN; `extra` lines are appended.
    func job(_ name: String, steps: Int = 6, data: Int = 1, extra: String = "") throws -> (path: String, run: String) {
        let d = Self.dir, run = "\(d)/run-\(name)"
        let text = """
            kind: ppo
            seed: 5
            init: \(d)/policy
            data: {prompts: \(d)/prompts.jsonl}
            ppo: {helpfulness: \(d)/rm, safety: \(d)/rm, rollouts: 8, mini_batch: 4, beta: 0.05, max_new_tokens: 12}
            optimizer: {lr: 1e-3}
            parallelism: {data: \(data)}
            steps: \(steps)
            threads: \(data == 1 ? 2 : 1)
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
        let one = try job("one", steps: 2), two = try job("two", steps: 2, data: 2)
        for j in [one, two] {
            let r = try HerdBinary.run(["run", j.path])
            XCTAssertEqual(r.status, 0, r.err)
        }
        let a = try steps(one.run), b = try steps(two.run)
        XCTAssertEqual(a.count, 2)
        XCTAssertEqual(b.count, 2)
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
