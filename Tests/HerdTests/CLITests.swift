import XCTest
import Foundation

/// The `herd` command as a user runs it (the release binary `make test` builds).
final class CLITests: XCTestCase {
    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) { try HerdBinary.run(args) }

    func temp(_ name: String) -> String { NSTemporaryDirectory() + "herd-cli-\(getpid())-" + name }

    func testBadManifestFailsBeforeTrainingAndNamesTheField() throws {
        let job = temp("bad.yaml")
        let out = temp("bad-run")
        try """
        kind: pretrain
        model: {preset: shakespeare-char, kv_heads: 3}
        data: {corpus: /usr/share/dict/none, tokenizer: char, seq_len: 64}
        batch: {sequences: 2}
        optimizer: {lr: 1e-3}
        steps: 5
        output: \(out)
        """.write(toFile: job, atomically: true, encoding: .utf8)
        let r = try run(["run", job])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("\(job): model.kv_heads: must divide heads (4), got 3"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing is written for a bad manifest")
    }

    func testRunPrintsProgressAndWritesEvents() throws {
        let corpus = temp("corpus.txt"), job = temp("ok.yaml"), out = temp("ok-run")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try String(repeating: "All the world's a stage, and all the men and women merely players.\n", count: 40)
            .write(toFile: corpus, atomically: true, encoding: .utf8)
        try """
        kind: pretrain
        model: {preset: tiny-gqa}
        data: {corpus: \(corpus), tokenizer: byte, seq_len: 16}
        batch: {sequences: 4, micro_batch: 2}
        optimizer: {lr: 3e-3}
        schedule: {warmup_steps: 2}
        steps: 6
        log_interval: 2
        eval: {interval: 3}
        """.write(toFile: job, atomically: true, encoding: .utf8)
        let r = try run(["run", job, "--output", out])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("step 6/6 | loss "), r.out)
        XCTAssertTrue(r.out.contains("tok/s | ETA"), r.out)
        let events = try String(contentsOfFile: out + "/events.jsonl", encoding: .utf8)
        XCTAssertEqual(events.split(separator: "\n").filter { $0.contains("\"event\":\"step\"") }.count, 4) // steps 1, 2, 4, 6
        XCTAssertEqual(events.split(separator: "\n").filter { $0.contains("\"event\":\"eval\"") }.count, 2) // steps 3, 6
        for f in ["manifest.yaml", "model.json", "tokenizer.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f)
        }
    }

    func testTrainingProcessGetsAVX512Kernels() throws {
        // On a CPU with AVX-512, herd must not run OpenBLAS's Haswell kernels.
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        try XCTSkipUnless(flags.contains("avx512f"), "no AVX-512 on this CPU")
        let r = try run(["version"])
        XCTAssertEqual(r.status, 0, r.err)
        let kernels = r.out.split(separator: "\n").first { $0.hasPrefix("OpenBLAS kernels:") } ?? ""
        XCTAssertFalse(kernels.contains("Haswell") || kernels.contains("Zen"), String(kernels))
    }
}
