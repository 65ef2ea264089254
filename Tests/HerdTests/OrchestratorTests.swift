import XCTest
import Foundation
import Herd

/// The orchestrator end to end, on real processes: jobs submitted to a
/// detached coordinator that launches mpirun (or sbatch), a worker killed
/// or stopped and the job restarted from its checkpoint without a human,
/// a cancel that leaves a checkpoint, and bad input refused before anything
/// is stored or started.
final class OrchestratorTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-orch-\(getpid())"
    static let home = dir + "/home"

    override class func setUp() {
        prepare {
            try HerdBinary.writeCorpus(in: dir)
            try HerdBinary.writeLocalCluster(in: dir)
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    var env: [String: String] {
        var e = ProcessInfo.processInfo.environment
        e["HERD_HOME"] = Self.home
        return e
    }

    func job(_ name: String, steps: Int = 2400, interval: Int = 200, data: Int = 2, tensor: Int = 1,
             maxRestarts: Int = 2, hangTimeout: Double = 4, extra: String = "") throws -> (job: String, run: String) {
        try HerdBinary.orchestratedJob(dir: Self.dir, name: name, steps: steps, interval: interval, data: data, tensor: tensor,
                                       maxRestarts: maxRestarts, hangTimeout: hangTimeout, extra: extra)
    }

    @discardableResult
    func herd(_ args: [String], expect status: Int32? = 0, env: [String: String]? = nil, line: UInt = #line) throws -> String {
        let r = try HerdBinary.run(args, environment: env ?? self.env)
        if let status { XCTAssertEqual(r.status, status, "herd \(args.joined(separator: " ")):\n\(r.out)\n\(r.err)", line: line) }
        return r.out + r.err
    }

    func submit(_ job: String, cluster: String? = nil) throws -> Int {
        let out = try herd(["submit", job, "--cluster", cluster ?? Self.dir + "/local.yaml"])
        return try XCTUnwrap(Int(out.split(separator: "\n").first ?? ""), out)
    }

    func record(_ id: Int) throws -> JobRecord { try JobStore(home: Self.home).job(id) }

    /// Polls the store until `done` holds (or fails the test after `timeout` s).
    @discardableResult
    func wait(_ id: Int, timeout: Double = 120, until done: (JobRecord) -> Bool) throws -> JobRecord {
        let end = Date().timeIntervalSince1970 + timeout
        while Date().timeIntervalSince1970 < end {
            let j = try record(id)
            if done(j) { return j }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let j = try record(id)
        XCTFail("job \(id) timed out in state \(j.state) at step \(j.step): \(j.message ?? "")")
        return j
    }

    func heartbeatPID(_ run: String, rank: Int) throws -> pid_t {
        try XCTUnwrap(HeartbeatRecord.readAll(run: run).first { $0.rank == rank }).pid
    }

    /// The `end` event's final training loss, exactly as rank 0 logged it.
    func finalLoss(_ run: String) throws -> Double {
        let end = try RunDirectory(run).readEvents().last { $0.event == .end }
        return try XCTUnwrap(end?.trainLoss, "no end event in \(run)")
    }

    func testKilledWorkerIsRestartedFromItsCheckpointAndEndsAsIfUninterrupted() throws {
        let j = try job("kill")
        let id = try submit(j.job)
        try wait(id) { $0.step >= 500 && $0.lastCheckpointStep != nil }
        let victim = try heartbeatPID(j.run, rank: 1)
        XCTAssertEqual(kill(victim, SIGKILL), 0)
        let done = try wait(id) { $0.state.isFinal }
        XCTAssertEqual(done.state, .succeeded, done.message ?? "")
        XCTAssertEqual(done.restarts, 1)
        XCTAssertEqual(done.attempt, 2)
        let restarts = try JobStore(home: Self.home).restarts(id)
        XCTAssertEqual(restarts.count, 1)
        XCTAssertTrue(restarts[0].reason.contains("exited with status"), restarts[0].reason)
        XCTAssertNotNil(restarts[0].fromStep)
        XCTAssertTrue(try String(contentsOfFile: j.run + "/events.jsonl", encoding: .utf8).contains("\"event\":\"restart\""))

        // The same job, uninterrupted, in the foreground without a coordinator.
        try herd(["run", j.job, "--output", Self.dir + "/run-kill-reference"])
        XCTAssertEqual(try finalLoss(j.run), try finalLoss(Self.dir + "/run-kill-reference"))
    }

    /// The coordinator SIGKILLed mid-run (an OOM kill on the login node):
    /// the attempt runs on unwatched, `herd status` says so, and `herd
    /// adopt` starts a coordinator that watches the same attempt — no
    /// restart counted, no step run twice, the uninterrupted run's final
    /// loss. A second coordinator for the job exits naming the one that
    /// holds it.
    func testKilledCoordinatorIsReplacedAndTheRunningAttemptAdopted() throws {
        let j = try job("adopt", steps: 3000)
        let id = try submit(j.job)
        let running = try wait(id) { $0.step >= 200 }
        let coordinator = try XCTUnwrap(running.coordinatorPID)
        let ranks = [try heartbeatPID(j.run, rank: 0), try heartbeatPID(j.run, rank: 1)]
        XCTAssertEqual(kill(pid_t(coordinator), SIGKILL), 0)
        let killedAt = try record(id).step
        Thread.sleep(forTimeInterval: 1)
        XCTAssertTrue(ranks.allSatisfy { Spawn.isAlive(Int($0)) }, "the ranks died with their coordinator")
        let status = try herd(["status", String(id)])
        XCTAssertEqual(try record(id).state, .running, status)
        XCTAssertTrue(status.contains("herd adopt \(id)"), status)

        try herd(["adopt", String(id)])
        let adopted = try wait(id, timeout: 30) { $0.coordinatorPID != coordinator && $0.step > killedAt + 20 }
        // One coordinator per job: a second one leaves it alone.
        let second = try herd(["coordinate", "--job", String(id)], expect: 3)
        XCTAssertTrue(second.contains("job \(id) is already watched by coordinator pid \(adopted.coordinatorPID ?? -1)"), second)
        try herd(["adopt", String(id)], expect: 2)

        let done = try wait(id) { $0.state.isFinal }
        XCTAssertEqual(done.state, .succeeded, done.message ?? "")
        XCTAssertEqual(done.restarts, 0)
        XCTAssertEqual(done.attempt, 1)
        // The coordinator gives its lease up as it exits, just after the final state.
        let until = Date().addingTimeInterval(10)
        while try JobStore(home: Self.home).lease(id) != nil && Date() < until { usleep(50_000) }
        XCTAssertNil(try JobStore(home: Self.home).lease(id), "the lease outlived the job")
        let events = try RunDirectory(j.run).readEvents()
        XCTAssertEqual(events.filter { $0.event == .adopt }.count, 1)
        XCTAssertEqual(events.filter { $0.event == .launch }.count, 1)
        let steps = events.filter { $0.event == .step }.compactMap(\.step)
        XCTAssertEqual(steps, steps.sorted())
        XCTAssertEqual(Set(steps).count, steps.count, "a step ran twice")
        try herd(["run", j.job, "--output", Self.dir + "/run-adopt-reference"])
        XCTAssertEqual(try finalLoss(j.run), try finalLoss(Self.dir + "/run-adopt-reference"))
    }

    /// A cancel of a job whose coordinator is gone but whose attempt runs:
    /// a coordinator adopts the attempt to stop it the usual way — every rank
    /// checkpoints, then exits — rather than waiting for no one.
    func testCancelOfAnUnwatchedJobStopsItsAttemptAfterACheckpoint() throws {
        let j = try job("adopt-cancel", steps: 6000, interval: 1000)
        let id = try submit(j.job)
        let running = try wait(id) { $0.step >= 100 }
        kill(pid_t(try XCTUnwrap(running.coordinatorPID)), SIGKILL)
        let out = try herd(["cancel", String(id), "--timeout", "60"])
        let done = try record(id)
        XCTAssertEqual(done.state, .cancelled, out)
        let saved = try XCTUnwrap(CheckpointStore(runDirectory: j.run).latest(), "no checkpoint written on the cancel")
        XCTAssertGreaterThan(saved, 100)
        XCTAssertLessThan(saved, 1000)
        XCTAssertEqual(done.restarts, 0)
        XCTAssertTrue(try RunDirectory(j.run).readEvents().contains { $0.event == .adopt })
    }

    /// The coordinator and its ranks killed together (the host rebooted):
    /// nothing to adopt, so the job is failed and `herd resume` relaunches it
    /// from its checkpoint, as before.
    func testKilledCoordinatorAndRanksResumeFromTheCheckpoint() throws {
        let j = try job("adopt-dead", steps: 800)
        let id = try submit(j.job)
        let running = try wait(id) { $0.step >= 250 && $0.lastCheckpointStep != nil }
        let mpirun = try XCTUnwrap(AttemptRecord.read(RunDirectory(j.run)))
        XCTAssertEqual(mpirun.attempt, 1)
        kill(pid_t(try XCTUnwrap(running.coordinatorPID)), SIGKILL)
        kill(-(pid_t(mpirun.id) ?? 0), SIGKILL)
        let until = Date().addingTimeInterval(10)
        while Spawn.isAlive(Int(mpirun.id) ?? 0) && Date() < until { usleep(50_000) }
        let status = try herd(["status", String(id)])
        XCTAssertEqual(try record(id).state, .failed, status)
        let out = try herd(["resume", String(id)])
        XCTAssertTrue(out.contains("resuming from the checkpoint at step"), out)
        let done = try wait(id) { $0.state.isFinal && $0.attempt == 2 }
        XCTAssertEqual(done.state, .succeeded, done.message ?? "")
        XCTAssertTrue(try RunDirectory(j.run).readEvents().contains { $0.event == .resume })
    }

    func testStoppedWorkerIsDetectedAsHungWithinTwiceTheTimeoutAndRestarted() throws {
        let timeout = 3.0
        let j = try job("hang", hangTimeout: timeout)
        let id = try submit(j.job)
        try wait(id) { $0.step >= 300 }
        let victim = try heartbeatPID(j.run, rank: 1)
        XCTAssertEqual(kill(victim, SIGSTOP), 0)
        let stoppedAt = Date().timeIntervalSince1970
        let restarting = try wait(id, timeout: 4 * timeout) { $0.restarts == 1 }
        let detected = Date().timeIntervalSince1970 - stoppedAt
        XCTAssertLessThanOrEqual(detected, 2 * timeout, "hang detected after \(detected) s")
        XCTAssertTrue(restarting.message?.contains("rank 1 (pid \(victim)") == true, restarting.message ?? "")
        XCTAssertTrue(restarting.message?.contains("no heartbeat") == true, restarting.message ?? "")
        let done = try wait(id) { $0.state.isFinal }
        XCTAssertEqual(done.state, .succeeded, done.message ?? "")
        XCTAssertFalse(Spawn.isAlive(Int(victim)), "the stopped worker was left behind")
    }

    func testCancelLeavesACheckpointAndResumeReshards() throws {
        let j = try job("cancel", steps: 6000, interval: 1000)
        let id = try submit(j.job)
        try wait(id) { $0.step >= 100 }
        let out = try herd(["cancel", String(id)])
        let cancelled = try record(id)
        XCTAssertEqual(cancelled.state, .cancelled, out)
        // The workers saved where they stopped, before the next interval checkpoint.
        let saved = try XCTUnwrap(CheckpointStore(runDirectory: j.run).latest())
        XCTAssertGreaterThan(saved, 0)
        XCTAssertLessThan(saved, 1000)
        XCTAssertTrue(out.contains("checkpoint at step \(saved)"), out)
        try herd(["cancel", String(id)], expect: 2)   // already ended

        // Resume on another layout: the checkpoint written at data 2 reshards to tensor 2.
        try herd(["resume", String(id), "--data", "1", "--tensor", "2", "--cluster", Self.dir + "/local.yaml"])
        try wait(id) { $0.state == .running && $0.step > saved }
        let status = try herd(["status", String(id), "--json"])
        XCTAssertTrue(status.contains("\"tensor\" : 2"), status)
        try herd(["cancel", String(id)])
        XCTAssertEqual(try record(id).state, .cancelled)
        let events = try String(contentsOfFile: j.run + "/events.jsonl", encoding: .utf8)
        XCTAssertTrue(events.contains("\"written_by\":\"data 2 × tensor 1\""), events)
    }

    func testForegroundRunUnderTheCoordinatorIsStored() throws {
        let j = try job("foreground", steps: 60)
        let out = try herd(["run", j.job, "--cluster", Self.dir + "/local.yaml"])
        XCTAssertTrue(out.contains("step 60/60"), out)
        let stored = try JobStore(home: Self.home).jobs().last { $0.name == "foreground" }
        XCTAssertEqual(stored?.state, .succeeded)
        XCTAssertEqual(stored?.step, 60)
        let logs = try herd(["logs", String(try XCTUnwrap(stored?.id)), "--rank", "1"])
        XCTAssertTrue(logs.isEmpty || !logs.contains("error"), logs)
        XCTAssertTrue(try herd(["logs", String(try XCTUnwrap(stored?.id))]).contains("done: 60 steps"))
        // Every rank's memory: in its heartbeat and the store, and the largest peak in the end event.
        let workers = try JobStore(home: Self.home).workers(try XCTUnwrap(stored?.id))
        XCTAssertEqual(workers.count, 2)
        for w in workers {
            let peak = try XCTUnwrap(w.peakResidentBytes, "rank \(w.rank) reported no memory")
            XCTAssertGreaterThan(peak, 1 << 20)
            XCTAssertGreaterThanOrEqual(peak, try XCTUnwrap(w.residentBytes))
        }
        let end = try XCTUnwrap(try RunDirectory(j.run).readEvents().last { $0.event == .end })
        let rank0 = try XCTUnwrap(end.peakResidentBytes), largest = try XCTUnwrap(end.peakResidentBytesMax)
        XCTAssertGreaterThanOrEqual(largest, rank0)
    }

    func testBadInputIsRefusedBeforeAnythingIsStoredOrStarted() throws {
        let before = try JobStore(home: Self.home).jobs().count
        // A manifest with a wrong field.
        let bad = try job("bad-field", extra: "checkpoint_every: 5")
        var out = try herd(["submit", bad.job, "--cluster", Self.dir + "/local.yaml"], expect: 2)
        XCTAssertTrue(out.contains("checkpoint_every"), out)
        // A layout that does not fit the cluster's slots.
        let big = try job("too-big", data: 4)
        out = try herd(["submit", big.job, "--cluster", Self.dir + "/local.yaml"], expect: 2)
        XCTAssertTrue(out.contains("4 ranks") && out.contains("2 slots"), out)
        // A cluster whose launcher is not installed (no Slurm on this PATH).
        let slurm = Self.dir + "/slurm.yaml"
        try "launcher: slurm\npartition: debug\nnodes:\n  - {hosts: [localhost], slots: 2, cores: 2, memory_gb: 16, peak_tflops: 0.1}\n"
            .write(toFile: slurm, atomically: true, encoding: .utf8)
        var noSlurm = env
        noSlurm["PATH"] = "/nonexistent"
        let ok = try job("fine")
        out = try herd(["submit", ok.job, "--cluster", slurm], expect: 2, env: noSlurm)
        XCTAssertTrue(out.contains("launcher") && out.contains("sbatch"), out)
        // A job id that does not exist.
        for cmd in ["status", "watch", "logs", "cancel", "resume"] {
            out = try herd([cmd, "987654"], expect: 2)
            XCTAssertTrue(out.contains("no job 987654"), "\(cmd): \(out)")
        }
        XCTAssertEqual(try JobStore(home: Self.home).jobs().count, before)
        for run in [bad.run, big.run, ok.run] { XCTAssertFalse(FileManager.default.fileExists(atPath: run), run) }

        // A run directory with no checkpoint to resume: a job that failed
        // (no restarts allowed) before its first checkpoint.
        let fragile = try job("fragile", steps: 3000, interval: 0, maxRestarts: 0)
        let id = try submit(fragile.job)
        try wait(id) { $0.step >= 20 }
        kill(try heartbeatPID(fragile.run, rank: 0), SIGKILL)
        let failed = try wait(id) { $0.state.isFinal }
        XCTAssertEqual(failed.state, .failed)
        XCTAssertTrue(failed.message?.contains("gave up after 0 restart") == true, failed.message ?? "")
        let attempts = try FileManager.default.contentsOfDirectory(atPath: fragile.run + "/logs")
        out = try herd(["resume", String(id)], expect: 2)
        XCTAssertTrue(out.contains("no checkpoint to resume"), out)
        XCTAssertEqual(try record(id).state, .failed)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: fragile.run + "/logs"), attempts, "resume started something")
    }
}
