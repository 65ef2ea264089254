import XCTest
import Foundation
import Herd

/// Checkpoints through real runs: exact resume, resharding to other
/// layouts, corruption caught, and a kill in the middle of a save.
final class CheckpointTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-ckpt-\(getpid())"

    override class func setUp() { prepare { try HerdBinary.writeCorpus(in: dir) } }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// tiny-gqa on bytes, 40 steps with the schedule fixed at 40 (so a run
    /// stopped at 20 and resumed follows the same schedule), a checkpoint every 10.
    func job(_ name: String, data: Int, tensor: Int, zero: Int = 0, interval: Int = 10, keep: Int = 5) throws -> (job: String, run: String) {
        let path = Self.dir + "/\(name).yaml", run = Self.dir + "/run-\(name)"
        try """
        kind: pretrain
        seed: 11
        model: {preset: tiny-gqa}
        data: {corpus: \(Self.dir)/corpus.txt, tokenizer: byte, seq_len: 16}
        batch: {sequences: 8, micro_batch: 2}
        optimizer: {lr: 3e-3}
        schedule: {warmup_steps: 5, decay_steps: 40}
        steps: 40
        log_interval: 1
        threads: 2
        checkpoint: {interval: \(interval), keep: \(keep)}
        parallelism: {data: \(data), tensor: \(tensor), zero: \(zero)}
        output: \(run)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, run)
    }

    @discardableResult
    func herd(_ args: [String], expectSuccess: Bool = true, line: UInt = #line) throws -> String {
        let r = try HerdBinary.run(args)
        if expectSuccess { XCTAssertEqual(r.status, 0, "herd \(args.joined(separator: " ")):\n\(r.out)\n\(r.err)", line: line) }
        return r.out + r.err
    }

    /// Loss at each step (the last record of a step wins, as after a resume).
    func losses(_ run: String) throws -> [Int: Double] {
        var out: [Int: Double] = [:]
        for e in try RunDirectory(run).readEvents() where e.event == .step { out[e.step!] = e.loss }
        return out
    }

    func weights(_ run: String, rank: Int = 0) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: run + String(format: "/weights/rank-%05d.f32", rank)))
    }

    func exactResume(data: Int, tensor: Int, zero: Int = 0) throws {
        let full = try job("full-\(data)\(tensor)-z\(zero)", data: data, tensor: tensor, zero: zero)
        let half = try job("half-\(data)\(tensor)-z\(zero)", data: data, tensor: tensor, zero: zero)
        try herd(["run", full.job, "--save-weights"])
        try herd(["run", half.job, "--steps", "20"])
        let out = try herd(["run", half.job, "--save-weights"])
        XCTAssertTrue(out.contains("resumed from \(half.run)/checkpoints/step-00000020"), out)
        let a = try losses(full.run), b = try losses(half.run)
        XCTAssertEqual(a.count, 40)
        for s in 1...40 { XCTAssertEqual(a[s], b[s], "(\(data),\(tensor)) step \(s): bitwise equal losses") }
        for r in 0..<(data * tensor) { XCTAssertEqual(try weights(full.run, rank: r), try weights(half.run, rank: r), "rank \(r) final weights") }
    }

    func testResumeIsExactInOneProcess() throws { try exactResume(data: 1, tensor: 1) }
    func testResumeIsExactAtTwoByTwo() throws { try exactResume(data: 2, tensor: 2) }

    /// ZeRO-3's ranks each write their part of the weights: the checkpoint
    /// resumes exactly at its own layout.
    func testResumeIsExactAtZeRO3() throws { try exactResume(data: 2, tensor: 2, zero: 3) }

    func testCheckpointFromTwoByTwoLoadsIntoOtherLayouts() throws {
        try reshard(from: 1, into: [(1, 1, 0), (1, 2, 0), (2, 1, 1), (1, 4, 0)])
    }

    func testZeRO3CheckpointLoadsIntoOtherStagesAndLayouts() throws {
        try reshard(from: 3, into: [(2, 1, 1), (1, 2, 0), (2, 2, 2)])
    }

    /// A checkpoint written at (2,2) and ZeRO stage `zero` resumed at each
    /// (data, tensor, stage) continues the uninterrupted run.
    func reshard(from zero: Int, into targets: [(Int, Int, Int)]) throws {
        let full = try job("reshard-src-full-z\(zero)", data: 2, tensor: 2, zero: zero)
        let half = try job("reshard-src-z\(zero)", data: 2, tensor: 2, zero: zero)
        try herd(["run", full.job])
        try herd(["run", half.job, "--steps", "20"])
        let reference = try losses(full.run)
        let source = CheckpointStore(runDirectory: half.run).path(step: 20)
        for (d, t, z) in targets {
            let target = try job("reshard-\(d)\(t)-z\(z)-from-z\(zero)", data: d, tensor: t, zero: z)
            let store = CheckpointStore(runDirectory: target.run)
            try FileManager.default.createDirectory(atPath: store.root, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: source, toPath: store.path(step: 20))
            try store.setLatest(20)
            let out = try herd(["run", target.job])
            XCTAssertTrue(out.contains("written at data 2 × tensor 2, ZeRO-\(zero)"), out)
            let got = try losses(target.run)
            XCTAssertEqual(got.keys.sorted(), Array(21...40), "(\(d),\(t)) trains steps 21–40 only")
            for s in 21...40 {
                XCTAssertLessThanOrEqual(abs(got[s]! - reference[s]!) / reference[s]!, 1e-4, "(\(d),\(t)) step \(s)")
            }
        }
    }

    func testCorruptionIsCaughtAndNamed() throws {
        let j = try job("corrupt", data: 2, tensor: 1, interval: 10)
        try herd(["run", j.job, "--steps", "20"])
        let store = CheckpointStore(runDirectory: j.run)
        let ten = store.path(step: 10), twenty = store.path(step: 20)
        let shard = twenty + "/rank-00000.zst"

        // One flipped byte: verify names the file; resume falls back to step 10 and says so.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: shard))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: shard))
        let v = try HerdBinary.run(["checkpoint", "verify", twenty])
        XCTAssertNotEqual(v.status, 0)
        XCTAssertTrue(v.err.contains("\(shard): corrupt checkpoint file: checksum"), v.err)
        // Asked for explicitly, a damaged checkpoint is refused with the file named.
        let r = try HerdBinary.run(["run", j.job, "--resume-step", "20"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue((r.out + r.err).contains(shard), r.out + r.err)

        let out = try herd(["run", j.job, "--steps", "21"])
        XCTAssertTrue(out.contains("step-00000020 named by LATEST is damaged"), out)
        XCTAssertTrue(out.contains("resuming from step-00000010"), out)
        XCTAssertTrue(out.contains("resumed from \(ten)"), out)

        // Truncated, missing, unparsable: each named by verify.
        let other = store.path(step: 21)
        try Data(bytes.prefix(100)).write(to: URL(fileURLWithPath: other + "/rank-00000.zst"))
        XCTAssertTrue(try HerdBinary.run(["checkpoint", "verify", other]).err.contains("\(other)/rank-00000.zst"))
        try FileManager.default.removeItem(atPath: other + "/rank-00000.zst")
        XCTAssertTrue(try HerdBinary.run(["checkpoint", "verify", other]).err.contains("\(other)/rank-00000.zst: missing"))
        try "{ not json".write(toFile: ten + "/manifest.json", atomically: true, encoding: .utf8)
        XCTAssertTrue(try HerdBinary.run(["checkpoint", "verify", ten]).err.contains("\(ten)/manifest.json: corrupt checkpoint file: the manifest does not parse"))
    }

    func testKillDuringSavesLeavesLatestComplete() throws {
        // A checkpoint every step: most of the time goes to saving, so the
        // kills land in the middle of writes.
        let j = try job("kill", data: 2, tensor: 1, interval: 1, keep: 2)
        let store = CheckpointStore(runDirectory: j.run)
        var rng = SplitMix64(seed: 3)
        for round in 0..<4 {
            let p = try HerdBinary.start(["run", j.job, "--steps", "100000"])
            // The first round kills after a first checkpoint (on a loaded machine starting up can take longer than the wait).
            let started = Date().addingTimeInterval(60)
            while store.latest() == nil && p.process.isRunning && Date() < started { usleep(20_000) }
            let wait = 0.8 + 1.2 * rng.nextUnit()
            Thread.sleep(forTimeInterval: wait)
            // Power off: SIGKILL mpirun, every worker and herd itself at once.
            for pid in processes(matching: j.run) + [p.process.processIdentifier] { kill(pid, SIGKILL) }
            p.process.waitUntilExit()
            guard let latest = store.latest() else { XCTFail("round \(round): LATEST names no complete checkpoint"); continue }
            XCTAssertNoThrow(try CheckpointManifest.read(dir: store.path(step: latest)).verify(dir: store.path(step: latest)),
                             "round \(round): LATEST step \(latest) verifies")
        }
        // And the run goes on from it.
        let out = try herd(["run", j.job, "--steps", "\(store.latest()! + 1)"])
        XCTAssertTrue(out.contains("resumed from"), out)
    }

    /// mpirun and the workers of a run (their command lines name its plan).
    func processes(matching run: String) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = pid_t(entry), let cmd = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            return String(decoding: cmd, as: UTF8.self).contains(run + "/plan.json") ? pid : nil
        }
    }
}

extension CheckpointTests {
    /// SIGTERM to `herd run` (a cancel or a pre-emption): every rank stops at
    /// the same step after writing a checkpoint, and the run resumes from it.
    func testSIGTERMCheckpointsBeforeTheWorkersExit() throws {
        for (d, t) in [(1, 1), (2, 2)] {
            let j = try job("term-\(d)\(t)", data: d, tensor: t, interval: 0)
            let p = try HerdBinary.start(["run", j.job, "--steps", "100000"])
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, !((try? String(contentsOfFile: j.run + "/events.jsonl", encoding: .utf8)) ?? "").contains("\"step\":3,") {
                usleep(50_000)
            }
            kill(p.process.processIdentifier, SIGTERM)
            let out = p.out.fileHandleForReading.readDataToEndOfFile(), err = p.err.fileHandleForReading.readDataToEndOfFile()
            p.process.waitUntilExit()
            let text = String(decoding: out + err, as: UTF8.self)
            XCTAssertEqual(p.process.terminationStatus, 143, text)
            XCTAssertTrue(text.contains("stopped by a signal after step"), text)
            let store = CheckpointStore(runDirectory: j.run)
            guard let latest = store.latest() else { XCTFail("(\(d),\(t)): no checkpoint after SIGTERM"); continue }
            XCTAssertNoThrow(try CheckpointManifest.read(dir: store.path(step: latest)).verify(dir: store.path(step: latest)))
            let again = try herd(["run", j.job, "--steps", "\(latest + 2)"])
            XCTAssertTrue(again.contains("resumed from \(store.path(step: latest))"), again)
        }
    }
}

extension CheckpointTests {
    /// bf16 weights ride along with the fp32 master copy: inspect shows
    /// them, verify decodes them, zstd accepts the files, and resume stays exact.
    func testBF16WeightsAreStoredBesideTheMasterCopy() throws {
        let j = try job("bf16", data: 1, tensor: 2)
        let text = try String(contentsOfFile: j.job, encoding: .utf8).replacingOccurrences(of: "keep: 5}", with: "keep: 5, dtype: bf16}")
        try text.write(toFile: j.job, atomically: true, encoding: .utf8)
        try herd(["run", j.job, "--steps", "10"])
        let ck = CheckpointStore(runDirectory: j.run).path(step: 10)
        let m = try CheckpointManifest.read(dir: ck)
        XCTAssertEqual(m.weightDType, "bf16")
        let embedding = m.tensors.first { $0.name == "tok_embeddings.weight" }!
        XCTAssertEqual(Set(embedding.pieces.map(\.component)), ["param", "weight", "exp_avg", "exp_avg_sq"])
        XCTAssertTrue(embedding.pieces.filter { $0.component == "weight" }.allSatisfy { $0.dtype == "bf16" })
        XCTAssertTrue(try herd(["checkpoint", "inspect", ck]).contains("weight bf16"))
        XCTAssertTrue(try herd(["checkpoint", "verify", ck]).contains(": ok"))
        let z = Process()
        z.executableURL = URL(fileURLWithPath: "/usr/bin/zstd")
        z.arguments = ["-q", "-t"] + m.files.map { ck + "/" + $0.name }
        try z.run(); z.waitUntilExit()
        XCTAssertEqual(z.terminationStatus, 0, "zstd -t accepts every file")
        XCTAssertEqual(BFloat16.toFloat(BFloat16.fromFloat(1.0 + 1.0 / 256)), 1.0, "ties round to even")
        XCTAssertEqual(BFloat16.toFloat(BFloat16.fromFloat(-3.140625)), -3.140625)
    }
}
