import XCTest
import Foundation
import Herd

/// Herd on several nodes: three simulated nodes (network namespaces, each
/// with its own address and hostname, talking TCP; scripts/herd-sim, from
/// ../shared/recipes/multi-node-netns.md) brought up around the tests and
/// torn down after. Skipped, saying why, where namespaces are not permitted.
final class MultiNodeTests: XCTestCase {
    static let dir = NSTemporaryDirectory() + "herd-multinode-\(getpid())"
    /// Names of this run's namespaces and state, so that nothing else's collide.
    static let env = ["HERD_SIM_DIR": "/tmp/herd-sim-\(getpid())", "HERD_SIM_PREFIX": "ht\(getpid())"]
    static var sim: String { FileManager.default.currentDirectoryPath + "/scripts/herd-sim" }
    static var up: String?   // why the nodes are not up, or nil

    override class func setUp() {
        HerdBinary.writeCorpus(in: dir)
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        guard getuid() == 0 else { up = "simulated nodes need root (network namespaces)"; return }
        // Spawn.run, not Foundation's Process: the nodes' holder processes outlive the script.
        guard (try? Spawn.run(sim, ["up", "3"], environment: environment, log: dir + "/herd-sim-up.log")) == 0 else {
            up = "network namespaces are not permitted here (scripts/herd-sim up failed: see \(dir)/herd-sim-up.log)"
            _ = try? Spawn.run(sim, ["down"], environment: environment, log: dir + "/herd-sim-down.log")
            return
        }
    }

    override class func tearDown() {
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        let log = NSTemporaryDirectory() + "herd-sim-down-\(getpid()).log"
        if up == nil { _ = try? Spawn.run(sim, ["down"], environment: environment, log: log) }
        try? FileManager.default.removeItem(atPath: log)
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The cluster file of the three nodes: mpirun in the simulated head
    /// node, ranks started through herd-sim's rsh agent.
    func cluster() throws -> String {
        let path = Self.dir + "/sim-3.yaml"
        try """
            name: sim-3
            launcher: mpirun
            mpirun_prefix: [\(Self.sim), exec, head]
            environment: {OMPI_MCA_plm_rsh_agent: "\(Self.sim) rsh", HERD_SIM_DIR: \(Self.env["HERD_SIM_DIR"]!), HERD_SIM_PREFIX: \(Self.env["HERD_SIM_PREFIX"]!)}
            nodes:
              - {hosts: [node1, node2, node3], slots: 2, cores: 2, memory_gb: 8, peak_tflops: 0.02}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func job(_ name: String, data: Int, tensor: Int, steps: Int = 20, hangTimeout: Double = 60, extra: String = "") throws -> (path: String, run: String) {
        let path = Self.dir + "/\(name).yaml", run = Self.dir + "/run-\(name)"
        try """
            kind: pretrain
            seed: 7
            model: {preset: tiny-gqa, max_seq_len: 32}
            data: {corpus: \(Self.dir)/corpus.txt, tokenizer: byte, seq_len: 32}
            batch: {sequences: 12}
            optimizer: {lr: 3e-3}
            schedule: {warmup_steps: 5}
            steps: \(steps)
            \(extra)
            log_interval: 1
            threads: 1
            parallelism: {data: \(data), tensor: \(tensor)}
            monitor: {heartbeat_seconds: 1, hang_timeout_seconds: \(hangTimeout)}
            output: \(run)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, run)
    }

    func losses(_ run: String) throws -> [Double] {
        try String(contentsOfFile: run + "/events.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["event"] as? String == "step" }.compactMap { $0["loss"] as? Double }
    }

    /// The environment of a herd command that uses the simulated nodes.
    var environment: [String: String] {
        var e = ProcessInfo.processInfo.environment
        e["HERD_HOME"] = Self.dir + "/herd-home"
        for (k, v) in Self.env { e[k] = v }
        return e
    }

    /// Starts `herd run JOB --cluster` on the nodes and returns once its checkpoint of step 10 exists (the job still running).
    func startAfterCheckpoint(_ run: String, job: String) throws -> (Process, Pipe) {
        let (p, out, _) = try HerdBinary.start(["run", job, "--cluster", try cluster()], environment: environment)
        let deadline = Date().addingTimeInterval(120)
        while (CheckpointStore(runDirectory: run).latest() ?? 0) < 10 && p.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(p.isRunning, "the job ended before its node could fail")
        return (p, out)
    }

    func sim(_ args: String...) throws -> Int32 {
        try Spawn.run(Self.sim, args, environment: environment, log: Self.dir + "/herd-sim.log")
    }

    /// A node powered off mid-run (every process on it SIGKILLed) and
    /// powered on again: mpirun fails, the coordinator restarts the job
    /// from its last checkpoint on the same three nodes without a person,
    /// and the final loss is the uninterrupted run's.
    func testKilledNodeIsRestartedAndTheJobEndsAsUninterrupted() throws {
        if let why = Self.up { throw XCTSkip(why) }
        let extra = "checkpoint: {interval: 10, async: false}\nrestart: {max_restarts: 3, backoff_seconds: 1}"
        let single = try job("whole", data: 1, tensor: 1, steps: 60, extra: extra), multi = try job("killed", data: 3, tensor: 2, steps: 60, extra: extra)
        XCTAssertEqual(try HerdBinary.run(["run", single.path]).status, 0)
        let (p, out) = try startAfterCheckpoint(multi.run, job: multi.path)
        XCTAssertEqual(try sim("kill-node", "node3"), 0)
        XCTAssertEqual(try sim("start-node", "node3"), 0)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("restart 1 of 3"), text)
        let a = try losses(single.run), b = try losses(multi.run)
        XCTAssertEqual(a.count, 60)
        XCTAssertGreaterThanOrEqual(b.count, 60)
        let events = try String(contentsOfFile: multi.run + "/events.jsonl", encoding: .utf8)
        XCTAssertTrue(events.contains(#""event":"resume""#), "the second attempt did not resume from a checkpoint")
        XCTAssertEqual(b.last!, a.last!, accuracy: 1e-4 * a.last!)
        let beats = HeartbeatRecord.readAll(run: multi.run)
        XCTAssertEqual(Set(beats.map(\.host)), ["node1", "node2", "node3"])
    }

    /// A node lost for good under `restart.on_node_loss: shrink`: the
    /// coordinator finds which hosts mpirun can still start a rank on and
    /// goes on, without a person, on the two that remain at data 2 (the
    /// checkpoint reshards); the global batch is the same, so is the loss.
    func testLostNodeShrinksTheJobToTheNodesThatRemain() throws {
        if let why = Self.up { throw XCTSkip(why) }
        defer { _ = try? sim("start-node", "node3") }
        let extra = "checkpoint: {interval: 10, async: false}\nrestart: {max_restarts: 3, backoff_seconds: 1, on_node_loss: shrink}"
        let single = try job("whole-shrink", data: 1, tensor: 1, steps: 60, extra: extra), multi = try job("shrunk", data: 3, tensor: 2, steps: 60, extra: extra)
        XCTAssertEqual(try HerdBinary.run(["run", single.path]).status, 0)
        let (p, out) = try startAfterCheckpoint(multi.run, job: multi.path)
        XCTAssertEqual(try sim("kill-node", "node3"), 0)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("lost node3 (mpirun cannot start a rank there): continuing on node1, node2 at data 2 × tensor 2"), text)
        let plan = try Plan.read(multi.run + "/" + Plan.fileName)
        XCTAssertEqual(plan.data, 2)
        XCTAssertEqual(plan.ranks.map(\.host), ["node1", "node1", "node2", "node2"])
        XCTAssertEqual(Set(HeartbeatRecord.readAll(run: multi.run).map(\.host)), ["node1", "node2"])
        let a = try losses(single.run), b = try losses(multi.run)
        XCTAssertEqual(b.last!, a.last!, accuracy: 1e-4 * a.last!)
    }

    /// A node cut off by a network partition (its processes keep running;
    /// mpirun notices nothing): the heartbeats show no progress, the
    /// coordinator calls the attempt hung within twice the hang timeout,
    /// restarts it on the nodes it can reach, and the ranks left on the
    /// cut-off node give up by themselves — no process waits forever.
    func testPartitionedNodeIsDetectedAndNoProcessWaitsForever() throws {
        if let why = Self.up { throw XCTSkip(why) }
        defer { _ = try? sim("heal", "node3") }
        let timeout = 4.0
        let extra = "checkpoint: {interval: 10, async: false}\nrestart: {max_restarts: 3, backoff_seconds: 1, on_node_loss: shrink}"
        let multi = try job("partitioned", data: 3, tensor: 2, steps: 60, hangTimeout: timeout, extra: extra)
        let (p, out) = try startAfterCheckpoint(multi.run, job: multi.path)
        XCTAssertEqual(try sim("partition", "node3"), 0)
        let cut = Date().timeIntervalSince1970
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("attempt 1 hung"), text)
        XCTAssertTrue(text.contains("continuing on node1, node2"), text)
        let events = try String(contentsOfFile: multi.run + "/events.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let restart = try XCTUnwrap(events.first { $0["event"] as? String == "restart" }?["time"] as? Double)
        XCTAssertLessThanOrEqual(restart - cut, 2 * timeout, "the partition was noticed after \(restart - cut) s")
        // The ranks of attempt 1 on the cut-off node: gone within twice the hang timeout of their last step.
        var left = ["x"]
        let until = Date().addingTimeInterval(2 * timeout + 10)
        while !left.isEmpty && Date() < until {
            left = (try? Spawn.capture("/usr/bin/pgrep", ["-f", "worker --plan \(multi.run)/plan.json"]).out)?.split(separator: "\n").map(String.init) ?? []
            if !left.isEmpty { usleep(200_000) }
        }
        XCTAssertEqual(left, [], "workers still running after the job ended")
    }

    /// (data 3, tensor 2) on three nodes through mpirun: every rank runs on
    /// the host the plan names, each tensor pair on one node, and the loss
    /// of every step equals one process's within 1e-4.
    func testDataThreeTensorTwoOnThreeNodesMatchesThePlanAndOneProcess() throws {
        if let why = Self.up { throw XCTSkip(why) }
        let single = try job("single", data: 1, tensor: 1), multi = try job("nodes", data: 3, tensor: 2)
        XCTAssertEqual(try HerdBinary.run(["run", single.path]).status, 0)
        let r = try HerdBinary.run(["run", multi.path, "--cluster", try cluster()], environment: environment)
        XCTAssertEqual(r.status, 0, r.out + r.err)

        let plan = try Plan.read(multi.run + "/" + Plan.fileName)
        XCTAssertEqual(plan.ranks.map(\.host), ["node1", "node1", "node2", "node2", "node3", "node3"])
        for d in 0..<3 {
            XCTAssertEqual(Set(plan.ranks.filter { $0.dataRank == d }.map(\.host)).count, 1, "tensor pair \(d) spans nodes")
        }
        let beats = HeartbeatRecord.readAll(run: multi.run)
        XCTAssertEqual(beats.count, 6)
        for b in beats { XCTAssertEqual(b.host, plan.ranks[b.rank].host, "rank \(b.rank) ran on \(b.host)") }
        for rank in 0..<6 {
            let log = try String(contentsOfFile: AttemptLogs.rankFile(run: multi.run, attempt: 1, rank: rank, stream: "stdout"), encoding: .utf8)
            XCTAssertTrue(log.contains("herd: rank \(rank) of 6 on \(plan.ranks[rank].host)\n"), log)
        }
        let a = try losses(single.run), b = try losses(multi.run)
        XCTAssertEqual(a.count, 20)
        XCTAssertEqual(b.count, 20)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-4 * x) }
    }
}
