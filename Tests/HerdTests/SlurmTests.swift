import XCTest
import Foundation
import Herd

/// A job on a real Slurm (slurmctld, slurmd and munge started here by
/// scripts/local-slurm.sh, on ports of its own): submitted with sbatch,
/// followed through squeue/scontrol, restarted with a new batch job when a
/// worker is killed, and ending where the same job ends on mpirun alone.
final class SlurmTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-slurm-test-\(getpid())"
    static let slurmDir = dir + "/slurm"

    override class func setUp() { prepare { try HerdBinary.writeCorpus(in: dir) } }

    override class func tearDown() {
        _ = try? Spawn.run("/bin/bash", ["scripts/local-slurm.sh", "stop", slurmDir], environment: ProcessInfo.processInfo.environment, log: "/dev/null")
        try? FileManager.default.removeItem(atPath: dir)
    }

    func startSlurm() throws -> String {
        try XCTSkipUnless(getuid() == 0, "the local Slurm of the recipe runs its daemons as root")
        try require(Spawn.which("slurmctld") != nil, "slurmctld (slurm-wlm)")
        var env = ProcessInfo.processInfo.environment
        env["HERD_SLURMCTLD_PORT"] = "16917"
        env["HERD_SLURMD_PORT"] = "16918"
        try FileManager.default.createDirectory(atPath: Self.slurmDir, withIntermediateDirectories: true)
        let log = Self.dir + "/slurm-start.log"
        let status = try Spawn.run("/bin/bash", ["scripts/local-slurm.sh", "start", Self.slurmDir], environment: env, log: log)
        XCTAssertEqual(status, 0, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        let cluster = Self.dir + "/slurm-test.yaml"
        try """
            name: slurm-test
            launcher: slurm
            partition: debug
            slurm_conf: \(Self.slurmDir)/slurm.conf
            nodes:
              - {hosts: [localhost], slots: 2, cores: 2, memory_gb: 16, peak_tflops: 0.1}
            """.write(toFile: cluster, atomically: true, encoding: .utf8)
        return cluster
    }

    func testJobOnSlurmShowsProgressSurvivesAKilledWorkerAndCompletes() throws {
        let cluster = try startSlurm()
        let (job, run) = try HerdBinary.orchestratedJob(dir: Self.dir, name: "on-slurm", hangTimeout: 10)
        var env = ProcessInfo.processInfo.environment
        env["HERD_HOME"] = Self.dir + "/home"
        let submitted = try HerdBinary.run(["submit", job, "--cluster", cluster], environment: env)
        XCTAssertEqual(submitted.status, 0, submitted.err)
        let id = try XCTUnwrap(Int(submitted.out.trimmingCharacters(in: .whitespacesAndNewlines)), submitted.out + submitted.err)

        // herd status shows the job running, part way.
        var seen: JobRecord?
        let until = Date().timeIntervalSince1970 + 120
        while Date().timeIntervalSince1970 < until {
            let s = try HerdBinary.run(["status", String(id), "--json"], environment: env)
            struct Detail: Decodable { var job: JobRecord }
            let j = try JSONDecoder().decode(Detail.self, from: Data(s.out.utf8)).job
            if j.state == .running && j.step >= 500 && j.lastCheckpointStep != nil { seen = j; break }
            XCTAssertFalse(j.state.isFinal, "ended before it was seen running: \(j.message ?? "")")
            Thread.sleep(forTimeInterval: 0.2)
        }
        let running = try XCTUnwrap(seen, "herd status never showed the job running")
        XCTAssertEqual(running.launcher, "slurm")
        XCTAssertLessThan(running.step, 2400)
        let slurmID = try XCTUnwrap(running.launchID)

        // Kill a worker: Slurm's job fails, and the coordinator submits a new one.
        let victim = try XCTUnwrap(HeartbeatRecord.readAll(run: run).first { $0.rank == 1 })
        XCTAssertEqual(kill(victim.pid, SIGKILL), 0)
        var done = try JobStore(home: Self.dir + "/home").job(id)
        while !done.state.isFinal && Date().timeIntervalSince1970 < until + 120 {
            Thread.sleep(forTimeInterval: 0.2)
            done = try JobStore(home: Self.dir + "/home").job(id)
        }
        XCTAssertEqual(done.state, .succeeded, done.message ?? "")
        XCTAssertEqual(done.restarts, 1)
        XCTAssertNotEqual(done.launchID, slurmID, "the restart is a new batch job")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/slurm/attempt-2.sbatch"))

        // Slurm's own record: the first batch job failed, the second completed.
        let slurmEnv = ["SLURM_CONF": Self.slurmDir + "/slurm.conf", "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"]
        let first = try Spawn.capture(try XCTUnwrap(Spawn.which("scontrol")), ["show", "job", slurmID], environment: slurmEnv)
        XCTAssertTrue(first.out.contains("JobState=FAILED"), first.out)
        let second = try Spawn.capture(try XCTUnwrap(Spawn.which("scontrol")), ["show", "job", try XCTUnwrap(done.launchID)], environment: slurmEnv)
        XCTAssertTrue(second.out.contains("JobState=COMPLETED"), second.out)

        // The same job on mpirun alone, uninterrupted, ends with the same loss.
        let reference = try HerdBinary.run(["run", job, "--output", Self.dir + "/run-reference"])
        XCTAssertEqual(reference.status, 0, reference.err)
        func loss(_ dir: String) throws -> Double? {
            try RunDirectory(dir).readEvents().last { $0.event == .end }?.trainLoss
        }
        XCTAssertNotNil(try loss(run))
        XCTAssertEqual(try loss(run), try loss(Self.dir + "/run-reference"))
    }
}
