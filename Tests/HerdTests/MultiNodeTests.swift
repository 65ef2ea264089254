import XCTest
import Foundation
import Herd

/// Herd on several nodes: three simulated nodes (network namespaces, each
/// with its own address and hostname, talking TCP; scripts/herd-sim, from
/// ../shared/recipes/multi-node-netns.md) brought up around the tests and
/// torn down after. Skipped, saying why, where namespaces are not permitted.
final class MultiNodeTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-multinode-\(getpid())"
    /// Names of this run's namespaces and state, so that nothing else's collide.
    static let env = ["HERD_SIM_DIR": "/tmp/herd-sim-\(getpid())", "HERD_SIM_PREFIX": "ht\(getpid())"]
    static var sim: String { FileManager.default.currentDirectoryPath + "/scripts/herd-sim" }
    static var up: String?   // why the nodes are not up, or nil
    static var slurm: String?   // why Slurm is not up on them, or nil

    override class func setUp() {
        prepare {
            try HerdBinary.writeCorpus(in: dir)
            var environment = ProcessInfo.processInfo.environment
            for (k, v) in env { environment[k] = v }
            guard getuid() == 0 else { up = "simulated nodes need root (network namespaces)"; return }
            // Spawn.run, not Foundation's Process: the nodes' holder processes outlive the script.
            guard (try? Spawn.run(sim, ["up", "3"], environment: environment, log: dir + "/herd-sim-up.log")) == 0 else {
                up = "network namespaces are not permitted here (scripts/herd-sim up failed: see \(dir)/herd-sim-up.log)"
                _ = try? Spawn.run(sim, ["down"], environment: environment, log: dir + "/herd-sim-down.log")
                return
            }
            // slurmctld in the head node, slurmd in every node (munged shared).
            if Spawn.which("slurmctld") == nil || Spawn.which("munged") == nil {
                slurm = "slurm-wlm is not installed (make setup installs it)"
            } else if (try? Spawn.run(sim, ["slurm-up"], environment: environment, log: dir + "/herd-sim-slurm-up.log")) != 0 {
                slurm = "Slurm did not come up on the simulated nodes: see \(dir)/herd-sim-slurm-up.log"
            }
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
            launcher_prefix: [\(Self.sim), exec, head]
            environment: {OMPI_MCA_plm_rsh_agent: "\(Self.sim) rsh", HERD_SIM_DIR: \(Self.env["HERD_SIM_DIR"]!), HERD_SIM_PREFIX: \(Self.env["HERD_SIM_PREFIX"]!)}
            nodes:
              - {hosts: [node1, node2, node3], slots: 2, cores: 2, memory_gb: 8, peak_tflops: 0.02}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The same nodes as a Slurm cluster: sbatch and the other Slurm commands
    /// run in the head node; the batch job starts its ranks with `step`. The
    /// host names are stand-ins (node-0, node-1, ...): the plan's hosts are
    /// read back from the allocation Slurm makes.
    func slurmCluster(step: String = "srun") throws -> String {
        let path = Self.dir + "/sim-3-slurm-\(step).yaml"
        try """
            name: sim-3-slurm
            launcher: slurm
            partition: debug
            slurm_conf: \(Self.env["HERD_SIM_DIR"]!)/slurm/slurm.conf
            step_launcher: \(step)
            launcher_prefix: [\(Self.sim), exec, head]
            environment: {HERD_SIM_DIR: \(Self.env["HERD_SIM_DIR"]!), HERD_SIM_PREFIX: \(Self.env["HERD_SIM_PREFIX"]!)}
            nodes:
              - {count: 3, prefix: node, slots: 2, cores: 2, memory_gb: 8, peak_tflops: 0.02}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A Slurm command in the head node; its output.
    func slurmCommand(_ args: String...) throws -> String {
        var e = environment
        e["SLURM_CONF"] = Self.env["HERD_SIM_DIR"]! + "/slurm/slurm.conf"
        return try Spawn.capture(Self.sim, ["exec", "head"] + args, environment: e).out
    }

    /// Skips without Slurm; otherwise waits until Slurm has all three nodes idle (a node an earlier test restarted re-registers).
    func requireSlurmNodes() throws {
        if let why = Self.up ?? Self.slurm { throw XCTSkip(why) }
        let until = Date().addingTimeInterval(60)
        while Date() < until, try slurmCommand("sinfo", "-h", "-t", "idle", "-o", "%D").trimmingCharacters(in: .whitespacesAndNewlines) != "3" {
            usleep(200_000)
        }
    }

    func events(_ run: String) throws -> [RunEvent] { try RunDirectory(run).readEvents() }

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
        try events(run).filter { $0.event == .step }.compactMap(\.loss)
    }

    /// The environment of a herd command that uses the simulated nodes.
    var environment: [String: String] {
        var e = ProcessInfo.processInfo.environment
        e["HERD_HOME"] = Self.dir + "/herd-home"
        for (k, v) in Self.env { e[k] = v }
        return e
    }

    /// Starts `herd run JOB --cluster` on the nodes and returns once its checkpoint of step 10 exists (the job still running).
    func startAfterCheckpoint(_ run: String, job: String, cluster: String) throws -> (Process, Pipe) {
        let (p, out, _) = try HerdBinary.start(["run", job, "--cluster", cluster], environment: environment)
        let deadline = Date().addingTimeInterval(120)
        while (CheckpointStore(runDirectory: run).latest() ?? 0) < 10 && p.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(p.isRunning, "the job ended before its node could fail")
        return (p, out)
    }

    enum NodeRestart { case never, atOnce, afterShrink }

    /// A (data 3, tensor 2) job of `steps` steps, checkpointed every 10, on
    /// `cluster`, with node3 powered off once its checkpoint of step 10
    /// exists — under Slurm also marked down at once, as a site's health
    /// check would (Slurm alone takes ~30 s) — and powered on again at once,
    /// never, or once the job has shrunk. The job must finish without a
    /// person. Returns its output and run directory, with the losses of the
    /// same job in one process.
    func killNodeMidRun(_ name: String, cluster: String, onNodeLoss: String = "wait", restart: NodeRestart, slurm: Bool = false,
                        steps: Int = 60, restartPolicy: String = "") throws -> (text: String, run: String, single: [Double]) {
        let extra = "checkpoint: {interval: 10, async: false}\nrestart: {max_restarts: 3, backoff_seconds: 1, on_node_loss: \(onNodeLoss)\(restartPolicy)}"
        let single = try job("\(name)-single", data: 1, tensor: 1, steps: steps, extra: extra), multi = try job(name, data: 3, tensor: 2, steps: steps, extra: extra)
        XCTAssertEqual(try HerdBinary.run(["run", single.path]).status, 0)
        let (p, out) = try startAfterCheckpoint(multi.run, job: multi.path, cluster: cluster)
        XCTAssertEqual(try sim("kill-node", "node3"), 0)
        if slurm { _ = try slurmCommand("scontrol", "update", "nodename=node3", "state=down", "reason=powered off by the test") }
        if restart == .afterShrink {
            let until = Date().addingTimeInterval(120)
            while p.isRunning && Date() < until, !((try? events(multi.run)) ?? []).contains(where: { $0.event == .shrink }) { usleep(100_000) }
        }
        if restart != .never { XCTAssertEqual(try sim("start-node", "node3"), 0) }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        let a = try losses(single.run), b = try losses(multi.run)
        XCTAssertEqual(a.count, steps)
        XCTAssertGreaterThanOrEqual(b.count, steps)
        XCTAssertEqual(b.last!, a.last!, accuracy: 1e-4 * a.last!, "the final loss differs from the uninterrupted run's")
        return (text, multi.run, a)
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
        let (text, run, _) = try killNodeMidRun("killed", cluster: try cluster(), restart: .atOnce)
        XCTAssertTrue(text.contains("restart 1 of 3"), text)
        XCTAssertTrue(try events(run).contains { $0.event == .resume }, "the second attempt did not resume from a checkpoint")
        XCTAssertEqual(Set(HeartbeatRecord.readAll(run: run).map(\.host)), ["node1", "node2", "node3"])
    }

    /// A node lost for good under `restart.on_node_loss: shrink`: the
    /// coordinator finds which hosts mpirun can still start a rank on and
    /// goes on, without a person, on the two that remain at data 2 (the
    /// checkpoint reshards); the global batch is the same, so is the loss.
    func testLostNodeShrinksTheJobToTheNodesThatRemain() throws {
        if let why = Self.up { throw XCTSkip(why) }
        defer { _ = try? sim("start-node", "node3") }
        let (text, run, _) = try killNodeMidRun("shrunk", cluster: try cluster(), onNodeLoss: "shrink", restart: .never)
        XCTAssertTrue(text.contains("lost node3 (mpirun cannot start a rank there): continuing on node1, node2 at data 2 × tensor 2"), text)
        let plan = try Plan.read(run + "/" + Plan.fileName)
        XCTAssertEqual(plan.data, 2)
        XCTAssertEqual(plan.ranks.map(\.host), ["node1", "node1", "node2", "node2"])
        XCTAssertEqual(Set(HeartbeatRecord.readAll(run: run).map(\.host)), ["node1", "node2"])
    }

    /// Elastic: a node lost under `shrink` that comes back while the job runs
    /// on the two others. The coordinator notices (it asks mpirun every
    /// `grow_check_seconds`), has every rank checkpoint and stop, and goes on
    /// at data 3 on all three nodes — no restart counted; through data 3 → 2 →
    /// 3 the loss stays the uninterrupted run's.
    func testLostNodeThatComesBackGrowsTheJobAgain() throws {
        if let why = Self.up { throw XCTSkip(why) }
        let (text, run, _) = try killNodeMidRun("regrown", cluster: try cluster(), onNodeLoss: "shrink", restart: .afterShrink,
                                                steps: 100, restartPolicy: ", grow_check_seconds: 1")
        XCTAssertTrue(text.contains("continuing on node1, node2 at data 2 × tensor 2"), text)
        XCTAssertTrue(text.contains("nodes back (all of them): growing to node1, node2, node3 at data 3 × tensor 2"), text)
        let plan = try Plan.read(run + "/" + Plan.fileName)
        XCTAssertEqual(plan.data, 3)
        XCTAssertEqual(plan.ranks.map(\.host), ["node1", "node1", "node2", "node2", "node3", "node3"])
        let all = try events(run)
        XCTAssertEqual(all.filter { $0.event == .grow }.count, 1)
        XCTAssertEqual(all.filter { $0.event == .restart }.count, 1, "growing back counted as a restart")
        XCTAssertEqual(all.filter { $0.event == .launch }.map(\.data), [3, 2, 3])
    }

    /// A (data 3, tensor 2) job on `cluster` whose node3 is cut off by a
    /// network partition once its checkpoint of step 10 exists (its
    /// processes keep running; the launcher notices nothing for a long
    /// while): the heartbeats show no progress, the coordinator calls the
    /// attempt hung within twice the hang timeout and goes on without the
    /// node, and the ranks left on it give up by themselves — no process
    /// waits forever. Returns the job's output.
    func partitionMidRun(_ name: String, cluster: String, killGrace: Double? = nil) throws -> String {
        defer { _ = try? sim("heal", "node3") }
        let timeout = 6.0   // starting 4 ranks and resuming must fit in it, on 2 shared cores
        let extra = "checkpoint: {interval: 10, async: false}\nrestart: {max_restarts: 3, backoff_seconds: 1, on_node_loss: shrink}"
        let multi = try job(name, data: 3, tensor: 2, steps: 60, hangTimeout: timeout, extra: extra)
        let (p, out) = try startAfterCheckpoint(multi.run, job: multi.path, cluster: cluster)
        // Attempt 1's ranks, every node's (the simulated nodes share one pid space).
        let ranks = HeartbeatRecord.readAll(run: multi.run)
        XCTAssertEqual(ranks.count, 6)
        XCTAssertEqual(try sim("partition", "node3"), 0)
        let cut = Date().timeIntervalSince1970
        if let killGrace {
            // Once the coordinator calls the attempt hung, it kills every rank of it, on every node, through
            // the cluster's agent — the cut-off node's too, which mpirun's own kill never reaches.
            var hungAt: Double?
            while hungAt == nil && p.isRunning && Date().timeIntervalSince1970 < cut + 4 * timeout {
                hungAt = (try? events(multi.run))?.first { $0.event == .restart }?.hungAt
                usleep(100_000)
            }
            let hung = try XCTUnwrap(hungAt, "the hang was not detected")
            var alive = ranks
            while !alive.isEmpty && Date().timeIntervalSince1970 < hung + killGrace + 5 {
                alive = alive.filter { Spawn.isAlive(Int($0.pid)) }
                usleep(50_000)
            }
            let gone = Date().timeIntervalSince1970
            XCTAssertEqual(alive.map(\.rank), [], "ranks of the hung attempt still running \(gone - hung) s after it was called hung")
            XCTAssertLessThanOrEqual(gone - cut, timeout + pollAndBeat + killGrace,
                                     "attempt 1's ranks were gone \(gone - cut) s after the partition (hang timeout \(timeout) s)")
            print("partition → hang called after \(String(format: "%.1f", hung - cut)) s; every rank of attempt 1 gone after \(String(format: "%.1f", gone - cut)) s")
        }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("attempt 1 hung"), text)
        let hung = try XCTUnwrap(try events(multi.run).first { $0.event == .restart }?.hungAt)
        XCTAssertLessThanOrEqual(hung - cut, 2 * timeout, "the partition was noticed after \(hung - cut) s")
        // The ranks of attempt 1 on the cut-off node: gone within twice the hang timeout of their last step.
        var left = ["x"]
        let until = Date().addingTimeInterval(2 * timeout + 10)
        while !left.isEmpty && Date() < until {
            left = (try? Spawn.capture("/usr/bin/pgrep", ["-f", "worker --plan \(multi.run)/plan.json"]).out)?.split(separator: "\n").map(String.init) ?? []
            if !left.isEmpty { usleep(200_000) }
        }
        XCTAssertEqual(left, [], "workers still running after the job ended")
        return text
    }

    /// The coordinator's poll and one heartbeat interval: how late after the
    /// hang timeout the silence is noticed at worst.
    let pollAndBeat = 1.5

    /// Under mpirun: restarted on the nodes mpirun can still reach, and every
    /// rank of the hung attempt, on every node, killed within the hang
    /// timeout and the kill's grace (10 s for the agent to reach each node).
    func testPartitionedNodeIsDetectedAndNoProcessWaitsForever() throws {
        if let why = Self.up { throw XCTSkip(why) }
        let text = try partitionMidRun("partitioned", cluster: try cluster(), killGrace: 10)
        XCTAssertTrue(text.contains("continuing on node1, node2"), text)
        XCTAssertTrue(text.contains("through \(Self.sim)"), text)
    }

    /// A rank on another node that has gone silent is told apart: stale while
    /// its process lives there, dead once it is gone — asked through the
    /// cluster's agent, by the library and by `herd serve`'s workers API.
    func testSilentRankOnAnotherNodeIsDeadOnlyWhenItsProcessIsGone() throws {
        if let why = Self.up { throw XCTSkip(why) }
        let run = Self.dir + "/run-remote-health"
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        let spec = try ClusterSpec.load(path: try cluster())
        try spec.write(to: RunDirectory(run))
        let sleeper = try Spawn.start(Self.sim, ["exec", "node2", "sleep", "300"], environment: environment, log: Self.dir + "/sleeper.log", detach: .processGroup)
        defer { kill(-sleeper, SIGKILL); _ = Spawn.wait(sleeper) }
        let victim = try Spawn.start(Self.sim, ["exec", "node2", "sleep", "300"], environment: environment, log: Self.dir + "/victim.log", detach: .processGroup)
        usleep(300_000)
        let old = Date().timeIntervalSince1970 - 60
        for (rank, pid) in [(0, sleeper), (1, victim)] {
            let r = HeartbeatRecord(rank: rank, host: "node2", pid: pid, step: 7, phase: "train", time: old, progressTime: old)
            try FileManager.default.createDirectory(atPath: HeartbeatRecord.directory(run: run), withIntermediateDirectories: true)
            try JSONEncoder().encode(r).write(to: URL(fileURLWithPath: HeartbeatRecord.file(run: run, rank: rank)))
        }
        let agent = RemoteAgent(cluster: spec)
        func statuses() -> [WorkerHealth.Status] {
            WorkerHealth.assess(run: run, world: 2, heartbeatSeconds: 1, jobEnded: false, agent: agent).map(\.status)
        }
        XCTAssertEqual(statuses(), [.stale, .stale])
        XCTAssertTrue(agent.kill([victim], on: "node2"))
        _ = Spawn.wait(victim)
        XCTAssertEqual(statuses(), [.stale, .dead])

        // The dashboard's API says the same.
        let home = Self.dir + "/serve-home"
        let store = try JobStore(home: home)
        var record = JobRecord(name: "remote-health", manifest: Self.dir + "/none.yaml", cluster: try cluster(), workdir: Self.dir, runDir: run,
                               launcher: "mpirun", data: 2, tensor: 1, totalSteps: 10, maxRestarts: 0)
        record.state = .running
        let id = try store.insert(record)
        try store.setState(id, .running)
        let server = try ServeProcess(home: home, environment: Self.env)
        defer { server.stop() }
        let workers = try XCTUnwrap(try server.json("/api/jobs/\(id)/workers")["workers"] as? [[String: Any]])
        XCTAssertEqual(workers.compactMap { $0["status"] as? String }, ["stale", "dead"])
    }

    /// Under Slurm: the hung job cancelled; once Slurm has the cut-off node
    /// down (not responding, ~30 s) the job goes on without it on two nodes.
    func testPartitionedNodeUnderSlurmIsDetectedAndTheJobGoesOnWithoutIt() throws {
        try requireSlurmNodes()
        let text = try partitionMidRun("slurm-partitioned", cluster: try slurmCluster())
        XCTAssertTrue(text.contains("continuing on 2 nodes of Slurm's choosing at data 2 × tensor 2"), text)
    }

    /// Runs a (data 3, tensor 2) job of 20 steps on `cluster` and checks it:
    /// every rank ran on the host the plan names, and logged it; each tensor
    /// pair on one node, in order node1..3; every step's loss within 1e-4 of
    /// `single`'s. Returns the plan and the job's events.
    func runThreeByTwo(_ name: String, cluster: String, single: [Double]) throws -> (plan: Plan, events: [RunEvent]) {
        let multi = try job(name, data: 3, tensor: 2)
        let r = try HerdBinary.run(["run", multi.path, "--cluster", cluster], environment: environment)
        XCTAssertEqual(r.status, 0, r.out + r.err)
        let plan = try Plan.read(multi.run + "/" + Plan.fileName)
        XCTAssertEqual(plan.ranks.map(\.host), ["node1", "node1", "node2", "node2", "node3", "node3"], name)
        let beats = HeartbeatRecord.readAll(run: multi.run)
        XCTAssertEqual(beats.count, 6)
        for b in beats { XCTAssertEqual(b.host, plan.ranks[b.rank].host, "\(name): rank \(b.rank) ran on \(b.host)") }
        for rank in 0..<6 {
            let log = try String(contentsOfFile: AttemptLogs.rankFile(run: multi.run, attempt: 1, rank: rank, stream: "stdout"), encoding: .utf8)
            XCTAssertTrue(log.contains("herd: rank \(rank) of 6 on \(plan.ranks[rank].host)\n"), "\(name): " + log)
        }
        let b = try losses(multi.run)
        XCTAssertEqual(single.count, 20)
        XCTAssertEqual(b.count, 20, name)
        for (x, y) in zip(single, b) { XCTAssertEqual(x, y, accuracy: 1e-4 * x, name) }
        return (plan, try events(multi.run))
    }

    /// (data 3, tensor 2) on three nodes through mpirun: every rank runs on
    /// the host the plan names, each tensor pair on one node, and the loss
    /// of every step equals one process's within 1e-4.
    func testDataThreeTensorTwoOnThreeNodesMatchesThePlanAndOneProcess() throws {
        if let why = Self.up { throw XCTSkip(why) }
        let single = try job("single", data: 1, tensor: 1)
        XCTAssertEqual(try HerdBinary.run(["run", single.path]).status, 0)
        _ = try runThreeByTwo("nodes", cluster: try cluster(), single: try losses(single.run))
    }

    // MARK: Slurm on the simulated nodes

    /// (data 3, tensor 2) submitted with `sbatch -N 3`: the batch job reads
    /// Slurm's allocation back into the plan before any rank starts (the
    /// cluster file's stand-in names give way to the nodes Slurm chose), every
    /// rank runs where the plan says, each tensor pair on one node, and the
    /// loss of every step is one process's — with the ranks started by srun
    /// (PMIx) and by mpirun inside the allocation.
    func testDataThreeTensorTwoOnThreeNodesUnderSlurm() throws {
        try requireSlurmNodes()
        let single = try job("slurm-single", data: 1, tensor: 1)
        XCTAssertEqual(try HerdBinary.run(["run", single.path]).status, 0)
        for step in ["srun", "mpirun"] {
            let (plan, events) = try runThreeByTwo("slurm-\(step)", cluster: try slurmCluster(step: step), single: try losses(single.run))
            let launch = try XCTUnwrap(events.first { $0.event == .launch })
            XCTAssertEqual(plan.allocation, launch.launchID, "\(step): the plan was not read back from the Slurm job's allocation")
        }
    }

    /// A node powered off under a Slurm job whose ranks srun started: Slurm
    /// ends the job NODE_FAIL and requeues it; Herd follows the requeue (one
    /// Slurm job, run again once the node is back, resuming from the last
    /// checkpoint) instead of submitting a second, and the final loss is the
    /// uninterrupted run's. A copy of the batch script submitted afterwards is
    /// not the run's current job: it starts no rank and writes nothing.
    func testKilledNodeUnderSlurmIsRequeuedFollowedAndEndsAsUninterrupted() throws {
        try requireSlurmNodes()
        let (text, run, _) = try killNodeMidRun("slurm-killed", cluster: try slurmCluster(), restart: .atOnce, slurm: true)
        XCTAssertTrue(text.contains("a node failed and Slurm requeued job"), text)
        let all = try events(run)
        let launches = all.filter { $0.event == .launch }
        XCTAssertEqual(launches.count, 1, "Herd submitted another Slurm job instead of following the requeue")
        XCTAssertEqual(all.filter { $0.event == .requeue }.count, 1)
        XCTAssertTrue(all.contains { $0.event == .resume }, "the requeued job did not resume from a checkpoint")
        let id = try XCTUnwrap(launches.first?.launchID)
        // Slurm's own record: the same job ended NODE_FAIL, then COMPLETED.
        let comp = try String(contentsOfFile: Self.env["HERD_SIM_DIR"]! + "/slurm/jobcomp.txt", encoding: .utf8)
            .split(separator: "\n").filter { $0.hasPrefix("JobId=\(id) ") }.compactMap { $0.split(separator: " ").first { $0.hasPrefix("JobState=") } }
        XCTAssertEqual(comp, ["JobState=NODE_FAIL", "JobState=COMPLETED"])
        XCTAssertEqual(Set(HeartbeatRecord.readAll(run: run).map(\.host)), ["node1", "node2", "node3"])

        // The fence: the attempt's script submitted again by hand exits 3 without starting a rank.
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints").sorted()
        let copy = try slurmCommand("sbatch", "--parsable", "--wait", "--nodes", "3", "--ntasks-per-node", "2",
                                    "--output", Self.dir + "/fenced.log", run + "/slurm/attempt-1.sbatch")
        let state = try slurmCommand("scontrol", "show", "job", copy.trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertTrue(state.contains("ExitCode=3:0"), state)
        XCTAssertTrue(try String(contentsOfFile: Self.dir + "/fenced.log", encoding: .utf8).contains("is not the run's current attempt"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints").sorted(), checkpoints)
    }

    /// A (data 3, tensor 2) job on `cluster` whose coordinator (`herd run
    /// --cluster`, in the foreground) is SIGKILLed once its checkpoint of step
    /// 10 exists: the attempt runs on; `herd adopt` starts a coordinator that
    /// finds it (mpirun by its pid, Slurm from its record) and watches it to
    /// its end — no restart, no second launch, no step run twice, the loss of
    /// the job in one process.
    func killCoordinatorAndAdopt(_ name: String, cluster: String, launcher: String) throws {
        let extra = "checkpoint: {interval: 10, async: false}\nrestart: {max_restarts: 3, backoff_seconds: 1}"
        let steps = 60
        let single = try job("\(name)-single", data: 1, tensor: 1, steps: steps, extra: extra)
        let multi = try job(name, data: 3, tensor: 2, steps: steps, extra: extra)
        XCTAssertEqual(try HerdBinary.run(["run", single.path]).status, 0)
        let (p, _) = try startAfterCheckpoint(multi.run, job: multi.path, cluster: cluster)
        kill(p.processIdentifier, SIGKILL)   // herd run --cluster is the job's coordinator
        p.waitUntilExit()
        let attempt = try XCTUnwrap(AttemptRecord.read(RunDirectory(multi.run)))
        XCTAssertEqual(attempt.launcher, launcher)
        let store = try JobStore(home: Self.dir + "/herd-home")
        let id = try XCTUnwrap(try store.jobs().last { $0.runDir == multi.run }).id
        let adopt = try HerdBinary.run(["adopt", String(id)], environment: environment)
        XCTAssertEqual(adopt.status, 0, adopt.out + adopt.err)
        let until = Date().addingTimeInterval(180)
        while Date() < until, !(try store.job(id)).state.isFinal { usleep(200_000) }
        let done = try store.job(id)
        XCTAssertEqual(done.state, .succeeded, done.message ?? "")
        XCTAssertEqual(done.restarts, 0)
        let all = try events(multi.run)
        XCTAssertEqual(all.filter { $0.event == .launch }.count, 1, "a second attempt was launched")
        XCTAssertEqual(all.filter { $0.event == .adopt }.map(\.launchID), [attempt.id])
        let adoptedAt = try XCTUnwrap(all.first { $0.event == .adopt }?.time)
        XCTAssertTrue(all.contains { $0.event == .step && ($0.time ?? 0) > adoptedAt }, "the job had ended before it was adopted")
        let a = try losses(single.run), b = try losses(multi.run)
        XCTAssertEqual(b.count, steps, "steps were run twice or not at all")
        XCTAssertEqual(b.last!, a.last!, accuracy: 1e-4 * a.last!, "the final loss differs from the uninterrupted run's")
    }

    /// Heartbeats across the network: a coordinator on the head node (the
    /// nodes cannot reach this machine's own namespace) hears every rank of
    /// the three nodes over UDP, and the loss is one process's.
    func testRanksOnEveryNodeHeartbeatOverUDPToACoordinatorOnTheHeadNode() throws {
        if let why = Self.up { throw XCTSkip(why) }
        let single = try job("udp-single", data: 1, tensor: 1)
        XCTAssertEqual(try HerdBinary.run(["run", single.path]).status, 0)
        let multi = try job("udp", data: 3, tensor: 2)
        try HerdBinary.requireBinary()
        let r = try Spawn.capture(Self.sim, ["exec", "head", HerdBinary.path, "run", multi.path, "--cluster", try cluster()], environment: environment)
        XCTAssertEqual(r.status, 0, r.out + r.err)
        XCTAssertTrue(r.out.contains("attempt 1: 6 of 6 ranks heartbeat to head port"), r.out)
        let a = try losses(single.run), b = try losses(multi.run)
        XCTAssertEqual(b.count, a.count)
        XCTAssertEqual(b.last!, a.last!, accuracy: 1e-4 * a.last!)
    }

    /// Under mpirun across the three nodes.
    func testKilledCoordinatorOfAMultiNodeJobIsReplacedAndTheAttemptAdopted() throws {
        if let why = Self.up { throw XCTSkip(why) }
        try killCoordinatorAndAdopt("adopt-nodes", cluster: try cluster(), launcher: "mpirun")
    }

    /// Under Slurm: the batch job runs on without its coordinator, and is found from Slurm's record.
    func testKilledCoordinatorOfASlurmJobIsReplacedAndTheJobAdopted() throws {
        try requireSlurmNodes()
        try killCoordinatorAndAdopt("slurm-adopt", cluster: try slurmCluster(), launcher: "slurm")
    }

    /// A node lost for good under Slurm with `restart.on_node_loss: shrink`:
    /// the requeued job asks for three nodes Slurm no longer has, so Herd
    /// cancels it and submits the job again on the two that remain at data 2
    /// (the checkpoint reshards); the global batch is the same, so is the loss.
    func testLostNodeUnderSlurmShrinksTheJobToTheNodesThatRemain() throws {
        try requireSlurmNodes()
        defer { _ = try? sim("start-node", "node3") }
        let (text, run, _) = try killNodeMidRun("slurm-shrunk", cluster: try slurmCluster(), onNodeLoss: "shrink", restart: .never, slurm: true)
        XCTAssertTrue(text.contains("lost node3 down (Slurm has 2 node(s) up): continuing on 2 nodes of Slurm's choosing at data 2 × tensor 2"), text)
        XCTAssertTrue(text.contains("cancelling the requeued Slurm job"), text)
        let plan = try Plan.read(run + "/" + Plan.fileName)
        XCTAssertEqual(plan.data, 2)
        XCTAssertEqual(plan.ranks.map(\.host), ["node1", "node1", "node2", "node2"])
        let launches = try events(run).filter { $0.event == .launch }
        XCTAssertEqual(launches.count, 2)
        XCTAssertEqual(plan.allocation, launches.last?.launchID)
    }
}
