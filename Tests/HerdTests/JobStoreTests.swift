import XCTest
import Foundation
import Herd

/// The job store and the monitor's decisions, without processes: SQLite
/// rows that outlive the connection that wrote them, and the hang rules.
final class JobStoreTests: XCTestCase {
    func home() -> String { NSTemporaryDirectory() + "herd-store-\(getpid())-\(UUID().uuidString)" }

    func record(_ name: String) -> JobRecord {
        JobRecord(name: name, manifest: "/j/\(name).yaml", cluster: "/c/local.yaml", workdir: "/w", runDir: "/runs/\(name)",
                  launcher: "mpirun", data: 2, tensor: 1, totalSteps: 100, maxRestarts: 3)
    }

    func testJobsRestartsAndWorkersSurviveReopening() throws {
        let dir = home()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let id: Int
        do {
            let store = try JobStore(home: dir)
            id = try store.insert(record("a"))
            _ = try store.insert(record("b"))
            try store.update(id, ["state": .text("running"), "step": .int(42), "loss": .double(2.5)])
            try store.recordRestart(id, attempt: 2, reason: "rank 1 died", fromStep: 40)
            try store.setWorkers(id, [WorkerRecord(rank: 0, host: "h", pid: 7, step: 42, phase: "train", heartbeat: 3, progress: 2)])
        }
        let again = try JobStore(home: dir)
        let job = try again.job(id)
        XCTAssertEqual(job.state, .running)
        XCTAssertEqual(job.step, 42)
        XCTAssertEqual(job.loss, 2.5)
        XCTAssertEqual(job.world, 2)
        XCTAssertEqual(try again.restarts(id).map(\.fromStep), [40])
        XCTAssertEqual(try again.workers(id).map(\.pid), [7])
        XCTAssertEqual(try again.jobs().map(\.name), ["a", "b"])
        XCTAssertThrowsError(try again.job(named: "99")) { XCTAssertTrue("\($0)".contains("no job 99")) }
        XCTAssertThrowsError(try again.job(named: "abc")) { XCTAssertTrue("\($0)".contains("not a job id")) }
    }

    func beat(_ rank: Int, time: Double, progress: Double) -> HeartbeatRecord {
        HeartbeatRecord(rank: rank, host: "h", pid: Int32(100 + rank), step: 5, phase: "train", time: time, progressTime: progress)
    }

    func testHangRules() {
        let t = 10.0
        // Healthy: fresh heartbeats and progress.
        XCTAssertNil(HangCheck.check([beat(0, time: 99, progress: 98), beat(1, time: 99, progress: 97)], world: 2, runningSince: 0, now: 100, timeout: t))
        // A rank that never reported: only after the timeout since start.
        XCTAssertNil(HangCheck.check([beat(0, time: 99, progress: 99)], world: 2, runningSince: 95, now: 100, timeout: t))
        XCTAssertTrue(HangCheck.check([beat(0, time: 99, progress: 99)], world: 2, runningSince: 80, now: 100, timeout: t)?
            .contains("rank 1 sent no heartbeat") == true)
        // A stopped rank: its heartbeat goes stale.
        XCTAssertTrue(HangCheck.check([beat(0, time: 99, progress: 80), beat(1, time: 85, progress: 80)], world: 2, runningSince: 0, now: 100, timeout: t)?
            .contains("rank 1 (pid 101 on h) sent no heartbeat for 15 s") == true)
        // Every rank beating but none moving: stuck.
        XCTAssertTrue(HangCheck.check([beat(0, time: 99, progress: 85), beat(1, time: 99, progress: 88)], world: 2, runningSince: 0, now: 100, timeout: t)?
            .contains("rank 0 (pid 100 on h) made no progress for 15 s") == true)
    }

    func testSlurmScriptQuotesEveryArgument() throws {
        try require(Spawn.which("mpirun") != nil, "mpirun")
        let m = try JobManifest.parse(yaml: """
            kind: pretrain
            model: {preset: tiny-gqa}
            data: {corpus: nowhere.txt, tokenizer: byte, seq_len: 16}
            batch: {sequences: 4}
            optimizer: {lr: 1e-3}
            steps: 10
            parallelism: {data: 2}
            output: "/runs/it's here"
            """, file: "j.yaml", overrides: .init(planOnly: true))
        let plan = try Planner.plan(manifest: m, model: m.model.config, host: "localhost", cores: 2)
        let script = try SlurmLauncher.script(plan: plan, planPath: "/runs/it's here/plan.json", executable: "/bin/herd", attempt: 3, jobID: 9, step: .mpirun)
        XCTAssertTrue(script.contains("'--output-filename' '/runs/it'\\''s here/logs/attempt-3'"), script)
        XCTAssertTrue(script.contains("trap 'kill -USR2 \"$child\" 2>/dev/null' USR2 TERM"))
        XCTAssertTrue(script.hasSuffix("exit $status\n"))
        // Only the run's current Slurm job starts ranks, on the nodes Slurm gave it.
        XCTAssertTrue(script.contains("current=$(cat '/runs/it'\\''s here/slurm/current' 2>/dev/null)"), script)
        XCTAssertTrue(script.contains("'/bin/herd' place --plan '/runs/it'\\''s here/plan.json' --job \"$SLURM_JOB_ID\" $(scontrol show hostnames \"$SLURM_JOB_NODELIST\") || exit 2"), script)
        if Spawn.which("srun") != nil {
            let srun = try SlurmLauncher.script(plan: plan, planPath: "/runs/it's here/plan.json", executable: "/bin/herd", attempt: 3, jobID: 9, step: .srun)
            XCTAssertTrue(srun.contains("'--mpi=pmix' '--kill-on-bad-exit=1'"), srun)
            XCTAssertTrue(srun.contains("'--ntasks-per-node' '2' '--output' '/runs/it'\\''s here/logs/attempt-3/1/rank.%t/stdout'"), srun)
            XCTAssertTrue(srun.contains("mkdir -p '/runs/it'\\''s here/logs/attempt-3/1/rank.0' '/runs/it'\\''s here/logs/attempt-3/1/rank.1'"), srun)
        }
    }
}
