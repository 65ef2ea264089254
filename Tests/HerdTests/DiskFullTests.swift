import XCTest
import Foundation
import Herd

/// A checkpoint into a full filesystem, on real processes: the run's
/// checkpoints/ is a small tmpfs, a filler file leaves room for the first
/// checkpoints and not the next. The rank that finds no space says which
/// file and how many bytes, leaves no partial checkpoint and exits 75; the
/// coordinator waits for space without counting a restart, and once the
/// filler is gone the job goes on from LATEST and ends as an uninterrupted
/// run does. Needs root (mount); skipped otherwise.
final class DiskFullTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-disk-\(getpid())"
    static let home = dir + "/home"

    override class func setUp() {
        prepare {
            try HerdBinary.writeCorpus(in: dir)
            try HerdBinary.writeLocalCluster(in: dir)
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// The tmpfs mounts this test made, unmounted in tearDown.
    var mounts: [String] = []

    override func tearDown() {
        for m in mounts.reversed() { _ = try? Spawn.capture("/bin/umount", ["-l", m]) }
        mounts = []
        super.tearDown()
    }

    var env: [String: String] {
        var e = ProcessInfo.processInfo.environment
        e["HERD_HOME"] = Self.home
        return e
    }

    /// Mounts a tmpfs of `kib` KiB at `path` (made first), or skips saying why.
    func mountTmpfs(_ path: String, kib: Int) throws {
        guard getuid() == 0 else { throw XCTSkip("mounting a tmpfs needs root (uid \(getuid()))") }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let r = try Spawn.capture("/bin/mount", ["-t", "tmpfs", "-o", "size=\(kib)k", "tmpfs", path])
        guard r.status == 0 else { throw XCTSkip("mount -t tmpfs failed (\(r.status)): \(r.out)\(r.err)") }
        mounts.append(path)
    }

    /// Writes `bytes` of zeros at `path` (really allocated: a tmpfs counts written pages).
    func fill(_ path: String, bytes: Int) throws {
        try Data(count: bytes).write(to: URL(fileURLWithPath: path))
    }

    /// The bytes a directory's files take on a tmpfs (whole pages), summed.
    func pages(_ dir: String) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: dir).reduce(0) { total, name in
            let size = (try FileManager.default.attributesOfItem(atPath: dir + "/" + name)[.size] as? NSNumber)?.intValue ?? 0
            return total + (size + 4095) / 4096 * 4096
        }
    }

    func temporaries(_ run: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: RunDirectory(run).checkpoints).filter { $0.hasSuffix(".tmp") }
    }

    func record(_ id: Int) throws -> JobRecord { try JobStore(home: Self.home).job(id) }

    @discardableResult
    func wait(_ id: Int, timeout: Double = 30, until done: (JobRecord) -> Bool) throws -> JobRecord {
        let end = Date().timeIntervalSince1970 + timeout
        while Date().timeIntervalSince1970 < end {
            let j = try record(id)
            if done(j) { return j }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let j = try record(id)
        throw TestFailure("job \(id) timed out in state \(j.state) at step \(j.step): \(j.message ?? "")")
    }

    /// tiny-gqa on bytes at data 2, a checkpoint every 20 steps (the orchestrator tests' job).
    func job(_ name: String, steps: Int, async: Bool = true) throws -> (job: String, run: String) {
        let path = Self.dir + "/\(name).yaml", run = Self.dir + "/run-\(name)"
        try """
            kind: pretrain
            name: \(name)
            seed: 5
            model: {preset: tiny-gqa}
            data: {corpus: \(Self.dir)/corpus.txt, tokenizer: byte, seq_len: 16}
            batch: {sequences: 64, micro_batch: 8}
            optimizer: {lr: 3e-3}
            schedule: {warmup_steps: 50}
            steps: \(steps)
            log_interval: 20
            threads: 2
            checkpoint: {interval: 20, keep: 3, async: \(async)}
            parallelism: {data: 2, tensor: 1}
            restart: {max_restarts: 2, backoff_seconds: 0.5}
            monitor: {heartbeat_seconds: 0.25, hang_timeout_seconds: 4}
            output: \(run)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, run)
    }

    func testACheckpointIntoAFullDiskWaitsForSpaceAndTheJobEndsAsIfUninterrupted() throws {
        let started = Date()
        // The uninterrupted run, in the foreground: its loss to match, and the size of a checkpoint.
        let j = try job("full", steps: 80)
        let reference = Self.dir + "/run-full-reference"
        try HerdBinary.fixture(["run", j.job, "--output", reference], environment: env)
        let written = CheckpointStore(runDirectory: reference)
        let checkpoint = try pages(written.path(step: try XCTUnwrap(written.latest())))

        // checkpoints/ on a tmpfs with room for four checkpoints, a filler leaving room for two and a half.
        let checkpoints = RunDirectory(j.run).checkpoints
        let size = (4 * checkpoint + 256 * 1024) / 1024
        try mountTmpfs(checkpoints, kib: size)
        let filler = checkpoints + "/filler"
        try fill(filler, bytes: size * 1024 - 5 * checkpoint / 2)

        let out = try HerdBinary.fixture(["submit", j.job, "--cluster", Self.dir + "/local.yaml"], environment: env).out
        let id = try XCTUnwrap(Int(out.split(separator: "\n").first ?? ""), out)
        // Steps 20 and 40 fit; 60 does not: the job waits, neither failed nor restarted.
        let waiting = try wait(id) { $0.message?.contains("waiting for disk space") == true || $0.state.isFinal }
        XCTAssertEqual(waiting.state, .restarting, waiting.message ?? "")
        XCTAssertEqual(waiting.restarts, 0)
        XCTAssertTrue(try JobStore(home: Self.home).restarts(id).isEmpty)

        // The rank said which file, how many bytes the checkpoint needs (the previous one's size) and how many are free.
        let events = try RunDirectory(j.run).readEvents()
        let failed = try XCTUnwrap(events.first { $0.event == .checkpointFailed }, "no checkpoint_failed event")
        let path = try XCTUnwrap(failed.path)
        XCTAssertTrue(path.hasPrefix(checkpoints + "/step-00000060.tmp/rank-0000"), path)
        XCTAssertEqual(failed.step, 60)
        let latest = try CheckpointManifest.read(dir: CheckpointStore(runDirectory: j.run).path(step: 40))
        let manifestBytes = try XCTUnwrap(try FileManager.default.attributesOfItem(
            atPath: CheckpointStore(runDirectory: j.run).path(step: 40) + "/manifest.json")[.size] as? NSNumber).intValue
        XCTAssertEqual(failed.bytes, latest.files.reduce(0) { $0 + $1.bytes } + manifestBytes)
        let free = try XCTUnwrap(failed.bytesFree)
        XCTAssertLessThan(free, try XCTUnwrap(failed.bytes))
        let reason = try XCTUnwrap(failed.reason)
        for part in ["checkpoint step-00000060 found no space", path, "No space left on device",
                     "\(failed.bytes!) bytes: the size of step-00000040, the previous complete checkpoint",
                     "(\(free) bytes) are free on the tmpfs filesystem mounted at \(checkpoints)"] {
            XCTAssertTrue(reason.contains(part), "\(part) not in: \(reason)")
        }
        // Said in the attempt's logs (the rank's abort) and by the coordinator.
        let launcher = try String(contentsOfFile: AttemptLogs.launcherFile(run: j.run, attempt: 1), encoding: .utf8)
        XCTAssertTrue(launcher.contains("found no space") && launcher.contains(path), launcher)
        // mpirun's summary names the status — unless two ranks aborting at once garbled its help text
        // (OpenMPI 4.1: "ORTE_ERROR_LOG: Data unpack had inadequate space"); the synchronous test checks 75 itself.
        if !launcher.contains("ORTE_ERROR_LOG") {
            XCTAssertTrue(launcher.contains("errorcode 75") || launcher.contains("Exit code:    75"), launcher)
        }
        let coordinator = try String(contentsOfFile: RunDirectory(j.run).coordinatorLog, encoding: .utf8)
        XCTAssertTrue(coordinator.contains("waiting for \(CheckpointSpace.text(bytes: failed.bytes!)) (\(failed.bytes!) bytes) free on the tmpfs"), coordinator)
        XCTAssertFalse(coordinator.contains("space is back"), coordinator)

        // No partial checkpoint; LATEST and the one before it complete, every file's checksum as recorded.
        XCTAssertEqual(try temporaries(j.run), [])
        let store = CheckpointStore(runDirectory: j.run)
        XCTAssertEqual(store.latest(), 40)
        XCTAssertEqual(store.steps(), [20, 40])
        for s in [20, 40] { XCTAssertNoThrow(try CheckpointManifest.read(dir: store.path(step: s)).verify(dir: store.path(step: s))) }

        // Still waiting a poll later; then space comes back and the job goes on from step 40, with no restart counted.
        Thread.sleep(forTimeInterval: 2.5)
        XCTAssertEqual(try record(id).state, .restarting)
        try FileManager.default.removeItem(atPath: filler)
        let done = try wait(id) { $0.state.isFinal }
        XCTAssertEqual(done.state, .succeeded, done.message ?? "")
        XCTAssertEqual(done.restarts, 0)
        XCTAssertEqual(done.attempt, 2)
        XCTAssertEqual(done.step, 80)
        let after = try RunDirectory(j.run).readEvents()
        XCTAssertEqual(after.first { $0.event == .resume }?.step, 40)
        XCTAssertFalse(after.contains { $0.event == .restart })
        XCTAssertTrue(try String(contentsOfFile: RunDirectory(j.run).coordinatorLog, encoding: .utf8).contains("space is back"))
        XCTAssertEqual(try temporaries(j.run), [])

        let end = try XCTUnwrap(after.last { $0.event == .end }?.trainLoss)
        let uninterrupted = try XCTUnwrap(try RunDirectory(reference).readEvents().last { $0.event == .end }?.trainLoss)
        XCTAssertEqual(end, uninterrupted)
        print("DiskFullTests: waited for space and finished in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }

    /// A job whose first checkpoint does not fit waits (nothing to resume
    /// from yet) and a cancel ends the wait: cancelled, no restart counted.
    func testACancelEndsTheWaitForSpace() throws {
        let j = try job("cancel", steps: 40)
        let checkpoints = RunDirectory(j.run).checkpoints
        try mountTmpfs(checkpoints, kib: 512)
        try fill(checkpoints + "/filler", bytes: 400 * 1024)
        let out = try HerdBinary.fixture(["submit", j.job, "--cluster", Self.dir + "/local.yaml"], environment: env).out
        let id = try XCTUnwrap(Int(out.split(separator: "\n").first ?? ""), out)
        let waiting = try wait(id) { $0.message?.contains("waiting for disk space") == true || $0.state.isFinal }
        XCTAssertEqual(waiting.state, .restarting, waiting.message ?? "")
        XCTAssertTrue(waiting.message?.contains("step-00000020.tmp/rank-0000") == true, waiting.message ?? "")
        let cancelled = try HerdBinary.run(["cancel", String(id)], environment: env)
        XCTAssertEqual(cancelled.status, 0, cancelled.out + cancelled.err)
        let done = try wait(id) { $0.state.isFinal }
        XCTAssertEqual(done.state, .cancelled, done.message ?? "")
        XCTAssertEqual(done.restarts, 0)
        XCTAssertEqual(done.attempt, 1)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: checkpoints), ["filler"])
        XCTAssertTrue(try String(contentsOfFile: RunDirectory(j.run).coordinatorLog, encoding: .utf8).contains("cancelled while waiting for disk space"))
    }

    /// A synchronous save, the first of its run, that does not fit: herd run
    /// (mpirun, two ranks) exits 75 naming the file and the uncompressed
    /// bytes the save writes, and leaves nothing behind but the filler.
    func testASynchronousFirstCheckpointThatDoesNotFitExits75AndLeavesNoPartialCheckpoint() throws {
        let j = try job("sync", steps: 20, async: false)
        let checkpoints = RunDirectory(j.run).checkpoints
        try mountTmpfs(checkpoints, kib: 512)
        try fill(checkpoints + "/filler", bytes: 400 * 1024)
        let r = try HerdBinary.run(["run", j.job], environment: env)
        XCTAssertEqual(r.status, CheckpointSpace.exitStatus, r.out + r.err)
        let events = try RunDirectory(j.run).readEvents()
        let failed = try XCTUnwrap(events.first { $0.event == .checkpointFailed }, r.out + r.err)
        let parameters = try XCTUnwrap(events.first { $0.event == .start }?.parameters)
        // fp32 weights and both AdamW moments, over the two ranks.
        XCTAssertEqual(failed.bytes, 12 * parameters)
        XCTAssertTrue(failed.reason?.contains("the uncompressed bytes this save writes over all ranks") == true, failed.reason ?? "")
        XCTAssertTrue((r.out + r.err).contains("found no space: "), r.out + r.err)
        XCTAssertTrue((r.out + r.err).contains(try XCTUnwrap(failed.path)), r.out + r.err)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: checkpoints), ["filler"])
    }
}
