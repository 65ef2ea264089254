import XCTest
import Foundation
import Herd

/// A job is resolved once, at submit: afterwards its manifest and cluster
/// files can go, and planning or submitting never reads the corpus.
final class ResolvedJobTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-resolved-\(getpid())"
    static let home = dir + "/home"

    override class func setUp() {
        prepare {
            try HerdBinary.writeCorpus(in: dir)
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    var env: [String: String] {
        var e = ProcessInfo.processInfo.environment
        e["HERD_HOME"] = Self.home
        return e
    }

    func cluster(_ name: String, prefix: String = "") throws -> String {
        let path = Self.dir + "/\(name).yaml"
        try """
            name: \(name)
            launcher: mpirun
            \(prefix)
            nodes:
              - {hosts: [localhost], slots: 2, cores: 2, memory_gb: 16, peak_tflops: 0.1}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func wait(_ id: Int, timeout: Double = 180) throws -> JobRecord {
        let end = Date().timeIntervalSince1970 + timeout
        while Date().timeIntervalSince1970 < end {
            let j = try JobStore(home: Self.home).job(id)
            if j.state.isFinal { return j }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw TestFailure("job \(id) did not end in \(timeout) s")
    }

    /// The manifest and the cluster file are deleted right after submit: the
    /// coordinator and both ranks run the job from RUN/job.json and
    /// RUN/cluster.json, to its end.
    func testJobRunsAsSubmittedAfterItsManifestAndClusterFileAreDeleted() throws {
        let (job, run) = try HerdBinary.orchestratedJob(dir: Self.dir, name: "deleted", steps: 120, interval: 60)
        let clusterFile = try cluster("deleted-cluster")
        let r = try HerdBinary.run(["submit", job, "--cluster", clusterFile], environment: env)
        XCTAssertEqual(r.status, 0, r.out + r.err)
        let id = try XCTUnwrap(Int(r.out.split(separator: "\n").first ?? ""), r.out)
        try FileManager.default.removeItem(atPath: job)
        try FileManager.default.removeItem(atPath: clusterFile)
        let done = try wait(id)
        XCTAssertEqual(done.state, .succeeded, done.message ?? "")
        XCTAssertEqual(done.step, 120)
        let resolved = try ResolvedJob.read(RunDirectory(run))
        XCTAssertEqual(resolved.manifest.name, "deleted")
        XCTAssertEqual(resolved.manifest.steps, 120)
        XCTAssertTrue(resolved.manifest.data.corpus.hasPrefix("/"), "a relative path in job.json: \(resolved.manifest.data.corpus)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: RunDirectory(run).manifest), "the manifest as submitted is kept for people")
        XCTAssertEqual(try RunDirectory(run).readEvents().last { $0.event == .end }?.step, 120)
    }

    /// A job whose corpus is a 20 GB file (sparse): `herd plan` and `herd
    /// submit` — and the coordinator submit starts — never open it. Under
    /// strace, following every process; the cluster's launcher runs under
    /// /bin/false, so no rank starts (a rank would read it: it trains on it).
    func testPlanAndSubmitReadNoneOfATwentyGigabyteCorpus() throws {
        try require(FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"), "strace")
        let corpus = Self.dir + "/huge.txt"
        XCTAssertTrue(FileManager.default.createFile(atPath: corpus, contents: nil))
        let h = try XCTUnwrap(FileHandle(forWritingAtPath: corpus))
        try h.truncate(atOffset: 20 << 30)
        try h.close()
        let job = Self.dir + "/huge.yaml"
        try """
            kind: pretrain
            name: huge
            model: {preset: tiny-gqa}
            data: {corpus: \(corpus), tokenizer: byte, seq_len: 16}
            batch: {sequences: 8}
            optimizer: {lr: 1e-3}
            steps: 10
            restart: {max_restarts: 0}
            output: \(Self.dir)/run-huge
            """.write(toFile: job, atomically: true, encoding: .utf8)
        let noRanks = try cluster("no-ranks", prefix: "launcher_prefix: [/bin/false]")
        func opens(_ args: [String]) throws -> String {
            let log = Self.dir + "/strace-\(args[0]).log"
            let r = try Spawn.capture("/usr/bin/strace", ["-f", "-qq", "-e", "trace=open,openat,openat2", "-o", log, HerdBinary.path] + args,
                                      environment: env)
            XCTAssertEqual(r.status, 0, r.out + r.err)
            return try String(contentsOfFile: log, encoding: .utf8)
        }
        let plan = try opens(["plan", job, "--cluster", noRanks])
        XCTAssertTrue(plan.contains("huge.yaml"), "strace saw no open of the manifest: the check would prove nothing")
        XCTAssertFalse(plan.contains("\"\(corpus)\""), "herd plan opened the corpus")
        let submit = try opens(["submit", job, "--cluster", noRanks])
        XCTAssertFalse(submit.contains("\"\(corpus)\""), "herd submit or its coordinator opened the corpus")
        let job2 = try XCTUnwrap(JobStore(home: Self.home).jobs().last { $0.name == "huge" })
        let ended = try wait(job2.id)
        XCTAssertEqual(ended.state, .failed, "the ranks were not to start")
        XCTAssertTrue(submit.contains("job.json"), "the coordinator never read the resolved job")

        // The same corpus at the char tokenizer without a vocab_size: its
        // vocabulary would be read from all 20 GB, so it is refused, unread.
        let charJob = Self.dir + "/huge-char.yaml"
        try String(contentsOfFile: job, encoding: .utf8).replacingOccurrences(of: "tokenizer: byte", with: "tokenizer: char")
            .replacingOccurrences(of: "name: huge", with: "name: huge-char").write(toFile: charJob, atomically: true, encoding: .utf8)
        let log = Self.dir + "/strace-char.log"
        let refused = try Spawn.capture("/usr/bin/strace", ["-f", "-qq", "-e", "trace=open,openat,openat2", "-o", log, HerdBinary.path,
                                                            "plan", charJob, "--cluster", noRanks], environment: env)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("model.vocab_size"), refused.err)
        XCTAssertFalse(try String(contentsOfFile: log, encoding: .utf8).contains("\"\(corpus)\""), "herd plan opened the corpus")
    }
}
