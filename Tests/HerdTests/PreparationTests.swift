import Foundation
import XCTest
import Herd

/// `herd data prepare` end to end: Llama 2's tokenizer against the
/// SentencePiece library on compressed JSON lines, interruption and ranks
/// against the uninterrupted one-rank run, bad lines, and jobs training on
/// a prepared dataset and on a weighted mixture.
final class PreparationTests: XCTestCase {
    var dir = ""
    let llama = "../shared/data/llama2-tokenizer.model"

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "herd-prep-\(getpid())-\(name.hashValue & 0xFFFF)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Documents of every kind the tokenizer must get right.
    static func documents(count: Int, seed: UInt64) -> [String] {
        var r = SplitMix64(seed: seed)
        let shakespeare = (try? String(contentsOfFile: "../shared/data/tinyshakespeare.txt", encoding: .utf8)) ?? "To be, or not to be."
        let paras = shakespeare.components(separatedBy: "\n\n")
        let kinds: [(inout SplitMix64) -> String] = [
            { r in paras[Int(r.next() % UInt64(paras.count))] },
            { r in "def f\(r.next() % 100)(x):\n    return x ** 2  # square\n\tif x:\n\t\tpass\n" },
            { r in "Numbers: \(r.next() % 1_000_000), 3.14159, 1e-10, 12345678901234567890, -0.5" },
            { _ in "spaces:   three, then\u{3000}ideographic,   \n\n\n   and trailing   " },
            { _ in "日本語のテキストと中文文本，还有한국어 텍스트。" },
            { _ in "emoji 🦙🚀 and ❤️‍🔥 and 👩🏽‍💻, Ελληνικά, русский, עברית, العربية" },
            { _ in "\u{2581}a literal marker\u{2581}\u{2581}and <s> not control </s>\r\nCRLF" },
        ]
        var docs = (0..<count).map { _ in kinds[Int(r.next() % UInt64(kinds.count))](&r) }
        // One document of 1 MB: prose with a long run of CJK in the middle.
        var big = ""
        while big.utf8.count < 1 << 20 { big += paras[Int(r.next() % UInt64(paras.count))] + " 漢字かな交じり文 " }
        docs.insert(big, at: count / 2)
        return docs
    }

    static func jsonLines(_ docs: [String]) throws -> Data {
        var out = Data()
        for d in docs {
            out += try JSONSerialization.data(withJSONObject: ["id": 1, "text": d, "meta": ["a": [1, 2]]], options: [.sortedKeys, .withoutEscapingSlashes])
            out += Data("\n".utf8)
        }
        return out
    }

    func compress(_ tool: String, _ path: String) throws {
        let r = try Spawn.capture(Spawn.which(tool) ?? "/usr/bin/\(tool)", tool == "gzip" ? ["-f", path] : ["-q", "-f", "--rm", path])
        XCTAssertEqual(r.status, 0, r.err)
    }

    /// Every document's ids are the SentencePiece library's encoding of its
    /// text with BOS and EOS around it, read back from the .bin/.idx.
    func testLlamaTokensEqualSentencePieceOnCompressedJSONLines() throws {
        try require(FileManager.default.fileExists(atPath: llama), "Llama 2's tokenizer at \(llama)", "../shared/data holds it")
        let python = try Self.sentencePiecePython()
        let a = Self.documents(count: 120, seed: 1), b = Self.documents(count: 80, seed: 2)
        try Self.jsonLines(a).write(to: URL(fileURLWithPath: dir + "/a.jsonl"))
        try Self.jsonLines(b).write(to: URL(fileURLWithPath: dir + "/b.jsonl"))
        try compress("zstd", dir + "/a.jsonl")
        try compress("gzip", dir + "/b.jsonl")
        try "A plain-text file is one document.\nIts second line, 🦙.\n".write(toFile: dir + "/c.txt", atomically: true, encoding: .utf8)
        let inputs = [dir + "/a.jsonl.zst", dir + "/b.jsonl.gz", dir + "/c.txt"]
        try HerdBinary.fixture(["data", "prepare"] + inputs + ["--tokenizer", llama, "--out", dir + "/out", "--no-dedup"])
        let expected = try Spawn.capture(python, ["Tests/Data/spm_encode_jsonl.py", llama] + inputs)
        XCTAssertEqual(expected.status, 0, expected.err)
        let lists = expected.out.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [Int] }
        let reader = try IndexedDatasetReader(prefix: dir + "/out/text_document")
        XCTAssertEqual(reader.documentCount, lists.count)
        XCTAssertEqual(reader.documentCount, a.count + b.count + 1)
        XCTAssertEqual(reader.dtype, .uint16, "a vocabulary under 65,500 is stored as uint16, as Megatron chooses")
        var mismatched = 0
        for (d, ids) in lists.enumerated() where d < reader.documentCount {
            let got = try reader.sequence(reader.documentSequences(d).lowerBound).map(Int.init)
            if got != ids { mismatched += 1; if mismatched <= 3 { XCTFail("document \(d): \(got.prefix(20))… != sentencepiece's \(ids.prefix(20))…") } }
        }
        XCTAssertEqual(mismatched, 0)
        let m = try PreparedDataset.read(dir: dir + "/out")
        XCTAssertEqual(m.totals.documents, lists.count)
        XCTAssertEqual(m.totals.tokens, lists.reduce(0) { $0 + $1.count })
        XCTAssertEqual(m.sources.map(\.path), inputs)
    }

    /// A Python with the sentencepiece library (HERD_PYTHON, else python3).
    static func sentencePiecePython() throws -> String {
        let env = ProcessInfo.processInfo.environment["HERD_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
        let python = env.map { $0.contains("/") ? $0 : (Spawn.which($0) ?? $0) } ?? Spawn.which("python3") ?? "/usr/bin/python3"
        let ok = (try? Spawn.capture(python, ["-c", "import sentencepiece"]))?.status == 0
        try require(ok, "the sentencepiece library for \(python)", "make test installs it in .build/pyenv (HERD_PYTHON)")
        return python
    }

    /// A corpus of several JSON-lines files with duplicates within and across files.
    func writeCorpus(files: Int, docsEach: Int) throws -> [String] {
        var paths: [String] = []
        for f in 0..<files {
            var docs = Self.documents(count: docsEach, seed: UInt64(10 + f)).filter { $0.utf8.count < 100_000 }
            docs += docs.prefix(5)   // duplicates
            let path = dir + "/part-\(f).jsonl"
            try Self.jsonLines(docs).write(to: URL(fileURLWithPath: path))
            paths.append(path)
        }
        return paths
    }

    func datasetBytes(_ out: String) throws -> [Data] {
        try ["text_document.bin", "text_document.idx"].map { try Data(contentsOf: URL(fileURLWithPath: out + "/" + $0)) }
    }

    /// SIGKILL mid-preparation, then the same command again: the dataset is
    /// byte-identical to an uninterrupted run's, and so is two ranks'.
    func testKilledAndTwoRankPreparationsEqualTheUninterruptedOne() throws {
        try require(Spawn.which("mpirun") != nil, "mpirun")
        let inputs = try writeCorpus(files: 3, docsEach: 400)
        func args(_ out: String) -> [String] { ["data", "prepare"] + inputs + ["--tokenizer", llama, "--out", out, "--unit-bytes", "16384", "--part-bytes", "4096"] }
        try HerdBinary.fixture(args(dir + "/whole"))
        let whole = try datasetBytes(dir + "/whole")
        let manifest = try PreparedDataset.read(dir: dir + "/whole")
        XCTAssertGreaterThanOrEqual(manifest.totals.duplicatesDropped, 15, "each file's repeated documents are dropped")

        // Killed once some units are done (and before the merge).
        try HerdBinary.requireBinary()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: HerdBinary.path)
        p.arguments = args(dir + "/killed")
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let work = dir + "/killed/.prepare"
        var done = 0
        for _ in 0..<20_000 {
            done = ((try? FileManager.default.contentsOfDirectory(atPath: work)) ?? []).filter { $0.hasSuffix(".json") && $0.hasPrefix("unit") }.count
            if done >= 3 || !p.isRunning { break }
            usleep(500)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/killed/manifest.json"), "killed before it finished (\(done) units done)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/killed/text_document.idx"), "no dataset is published unfinished")
        let rerun = try HerdBinary.fixture(args(dir + "/killed"))
        XCTAssertEqual(try datasetBytes(dir + "/killed"), whole, "the rerun continues to the uninterrupted run's bytes")
        XCTAssertTrue(rerun.out.contains("unit"), rerun.out)

        try HerdBinary.fixture(args(dir + "/two") + ["--ranks", "2"])
        XCTAssertEqual(try datasetBytes(dir + "/two"), whole, "two ranks write the one rank's bytes")
        var m2 = try PreparedDataset.read(dir: dir + "/two")
        m2.settings.out = manifest.settings.out
        XCTAssertEqual(m2, manifest)

        // Ranks started by the user's own mpirun (as on several nodes), after --plan-only.
        try HerdBinary.fixture(args(dir + "/own") + ["--plan-only"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/own/.prepare/plan.json"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/own/text_document.idx"))
        let own = try Spawn.capture(Spawn.which("mpirun")!, ["-np", "2", "--oversubscribe", "--bind-to", "none", HerdBinary.path] + args(dir + "/own") + ["--mpi-rank"],
                                    environment: MPILauncher.environment())
        XCTAssertEqual(own.status, 0, own.err)
        XCTAssertEqual(try datasetBytes(dir + "/own"), whole, "ranks of the user's mpirun write the same bytes")

        // A rerun of a finished preparation does nothing; other settings are refused.
        XCTAssertTrue(try HerdBinary.fixture(args(dir + "/whole")).out.contains("already prepared"))
        let other = try HerdBinary.run(args(dir + "/whole") + ["--text-key", "body"])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.err.contains("other settings"), other.err)
    }

    /// A malformed line: named and refused (nothing published), or counted and skipped.
    func testBadLinesFailNamingTheLineOrAreSkipped() throws {
        let path = dir + "/bad.jsonl"
        try "{\"text\": \"fine\"}\n{\"text\": \"no end\"\n{\"body\": \"no text\"}\n{\"text\": \"fine too\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let failed = try HerdBinary.run(["data", "prepare", path, "--tokenizer", "byte", "--out", dir + "/f"])
        XCTAssertNotEqual(failed.status, 0)
        XCTAssertTrue(failed.err.contains("\(path):2:"), failed.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/f/manifest.json"))
        try HerdBinary.fixture(["data", "prepare", path, "--tokenizer", "byte", "--out", dir + "/s", "--on-bad-line", "skip"])
        let m = try PreparedDataset.read(dir: dir + "/s")
        XCTAssertEqual(m.totals.badLines, 2)
        XCTAssertEqual(m.totals.documents, 2)
        XCTAssertEqual(m.sources[0].firstBadLines.count, 2)
        XCTAssertTrue(m.sources[0].firstBadLines[1].hasPrefix("\(path):3:"), "\(m.sources[0].firstBadLines)")
        let r = try IndexedDatasetReader(prefix: dir + "/s/text_document")
        XCTAssertEqual(try r.sequence(0), Array("fine\n".utf8).map(Int32.init), "byte documents end with a newline")
        let missing = try HerdBinary.run(["data", "prepare", dir + "/nothing-*.jsonl", "--tokenizer", "byte", "--out", dir + "/n"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.err.contains("nothing-*.jsonl"), missing.err)
    }
}

extension PreparationTests {
    /// A job on three prepared datasets weighted 0.5/0.3/0.2: each
    /// evaluation reports every source's held-out loss and share of the
    /// sequences, and a resume at another data-parallel degree trains on the
    /// same sequences (the same losses) as the uninterrupted run.
    func testMixtureJobReportsEachSourceAndResumesAtAnotherLayout() throws {
        let text = (try? String(contentsOfFile: "../shared/data/tinyshakespeare.txt", encoding: .utf8)) ?? String(repeating: "To be or not to be.\n\n", count: 3000)
        let paras = text.components(separatedBy: "\n\n")
        let cuts = [0, paras.count / 3, 2 * paras.count / 3, paras.count]
        for k in 0..<3 {
            let lines = try paras[cuts[k]..<cuts[k + 1]].map { String(decoding: try JSONSerialization.data(withJSONObject: ["text": $0]), as: UTF8.self) }
            try lines.joined(separator: "\n").write(toFile: "\(dir)/m\(k).jsonl", atomically: true, encoding: .utf8)
            try HerdBinary.fixture(["data", "prepare", "\(dir)/m\(k).jsonl", "--tokenizer", "byte", "--out", "\(dir)/src\(k)"])
        }
        func job(_ output: String, data: Int) throws -> String {
            let path = "\(dir)/\(output).yaml"
            try """
            kind: pretrain
            seed: 2
            model: {preset: tiny-gqa}
            data:
              mix:
                - {shards: \(dir)/src0, weight: 0.5}
                - {shards: \(dir)/src1, weight: 0.3}
                - {shards: \(dir)/src2, weight: 0.2}
              seq_len: 16
            batch: {sequences: 8}
            optimizer: {lr: 3e-3}
            schedule: {warmup_steps: 2}
            steps: 6
            log_interval: 1
            eval: {interval: 3, max_sequences: 24}
            checkpoint: {interval: 3}
            threads: 2
            parallelism: {data: \(data)}
            output: \(dir)/\(output)
            """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        try HerdBinary.fixture(["run", try job("whole", data: 1), "--no-resume"])
        let whole = try RunDirectory(dir + "/whole").readEvents()
        let evals = whole.filter { $0.event == .eval }
        XCTAssertEqual(evals.count, 2)
        for e in evals {
            XCTAssertEqual(Set((e.sourceLosses ?? [:]).keys), ["src0", "src1", "src2"])
            XCTAssertTrue((e.sourceLosses ?? [:]).values.allSatisfy(\.isFinite))
            XCTAssertEqual((e.mixProportions ?? [:]).values.reduce(0, +), 1, accuracy: 1e-9)
        }
        // Resume at step 3 with two data-parallel ranks.
        try FileManager.default.copyItem(atPath: dir + "/whole", toPath: dir + "/resumed")
        try FileManager.default.removeItem(atPath: dir + "/resumed/checkpoints/step-00000006")
        try HerdBinary.fixture(["run", try job("resumed", data: 2)])
        let resumed = try RunDirectory(dir + "/resumed").readEvents()
        XCTAssertEqual(resumed.first { $0.event == .resume }?.step, 3, "resumed from step 3")
        func losses(_ events: [RunEvent]) -> [Int: Double] {
            Dictionary(events.filter { $0.event == .step }.map { ($0.step!, $0.loss!) }, uniquingKeysWith: { $1 })
        }
        let a = losses(whole), b = losses(resumed)
        for s in 4...6 { XCTAssertEqual(a[s]!, b[s]!, accuracy: 1e-4 * a[s]!, "step \(s): the same sequences at data 2 after the resume") }
    }
}

extension PreparationTests {
    /// The char tokenizer: its vocabulary is the corpus's characters (and
    /// "\n", which ends each document), found by a first pass; the ids
    /// decode back to the documents, and a job trains on the dataset.
    func testCharPreparationDecodesBackAndTrains() throws {
        let docs = ["Once more unto the breach, dear friends;", "Ça va? Très bien. 🦙", "To be, or not to be"]
        try Self.jsonLines(docs + docs).write(to: URL(fileURLWithPath: dir + "/c.jsonl"))
        try HerdBinary.fixture(["data", "prepare", dir + "/c.jsonl", "--tokenizer", "char", "--out", dir + "/out"])
        let tok = try JSONDecoder().decode(CharTokenizer.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/out/tokenizer.json")))
        XCTAssertEqual(Set(tok.characters), Set((docs.joined() + "\n").unicodeScalars))
        let r = try IndexedDatasetReader(prefix: dir + "/out/text_document")
        XCTAssertEqual(r.documentCount, 3, "the repeated documents are dropped")
        XCTAssertEqual(try (0..<3).map { tok.decode(try r.sequence($0)) }, docs.map { $0 + "\n" })
        XCTAssertEqual(try PreparedDataset.read(dir: dir + "/out").totals.duplicatesDropped, 3)
        try """
        kind: pretrain
        model: {preset: tiny-gqa}
        data: {shards: \(dir)/out, seq_len: 8, val_fraction: 0}
        batch: {sequences: 4}
        optimizer: {lr: 1e-3}
        schedule: {warmup_steps: 1}
        steps: 2
        output: \(dir)/run
        """.write(toFile: dir + "/job.yaml", atomically: true, encoding: .utf8)
        let run = try HerdBinary.fixture(["run", dir + "/job.yaml"])
        XCTAssertTrue(run.out.contains("vocab \(tok.vocabSize)"), run.out)
    }

    /// A prepare job under the coordinator: submitted, a rank SIGKILLed and
    /// the job restarted keeping the units done, cancelled and resumed — and
    /// the dataset byte-identical to the same job run by `herd run` on one
    /// rank. The store shows its progress in units, MB/s and ETA.
    func testPreparationJobSurvivesAKilledRankAndACancelAndEqualsTheOneRankRun() throws {
        try require(Spawn.which("mpirun") != nil, "mpirun")
        // Some 2 MB in 2 KiB units: about a thousand, each a few files made
        // durable, so that the job runs for seconds (tokenizing alone would
        // take a fraction of one, and end before a rank could be killed).
        let inputs = try writeCorpus(files: 4, docsEach: 4000)
        let home = dir + "/home"
        var env = ProcessInfo.processInfo.environment
        env["HERD_HOME"] = home
        try """
        name: local
        launcher: mpirun
        nodes:
          - {hosts: [localhost], slots: 2, cores: 2, memory_gb: 16, peak_tflops: 0.1}
        """.write(toFile: dir + "/local.yaml", atomically: true, encoding: .utf8)
        func job(_ name: String, ranks: Int) throws -> String {
            let path = dir + "/\(name).yaml"
            try """
            kind: prepare
            name: \(name)
            prepare:
              inputs: [\(inputs.joined(separator: ", "))]
              tokenizer: \(llama)
              out: \(dir)/\(name)-data
              unit_bytes: 2048
              part_bytes: 4096
            parallelism: {data: \(ranks)}
            restart: {max_restarts: 2, backoff_seconds: 0.2}
            monitor: {heartbeat_seconds: 0.25, hang_timeout_seconds: 20}
            output: \(dir)/\(name)-run
            """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let one = try HerdBinary.fixture(["run", try job("one", ranks: 1)], environment: env)
        XCTAssertTrue(one.out.contains("documents"), one.out)
        let reference = try datasetBytes(dir + "/one-data")

        let submitted = try HerdBinary.fixture(["submit", try job("two", ranks: 2), "--cluster", dir + "/local.yaml"], environment: env)
        let id = try XCTUnwrap(Int(submitted.out.split(separator: "\n").first ?? ""), submitted.out)
        let store = try JobStore(home: home)
        func wait(_ what: String, _ done: (JobRecord) -> Bool) throws -> JobRecord {
            for _ in 0..<2400 {
                let j = try store.job(id)
                if done(j) { return j }
                usleep(25_000)
            }
            let j = try store.job(id)
            throw PreparationError("job \(id) never reached \(what): \(j.state) at unit \(j.step)/\(j.totalSteps): \(j.message ?? "")")
        }
        let running = try wait("its third unit") { $0.step >= 3 && $0.state == .running }
        XCTAssertLessThan(running.step, running.totalSteps, "killed before every unit is done")
        let victim = try XCTUnwrap(HeartbeatRecord.readAll(run: dir + "/two-run").first { $0.rank == 1 })
        XCTAssertEqual(kill(victim.pid, SIGKILL), 0)
        let restarted = try wait("its second attempt's progress") { $0.attempt == 2 && $0.state == .running && $0.step > running.step }
        XCTAssertEqual(restarted.restarts, 1)
        XCTAssertNotNil(restarted.etaSeconds)
        XCTAssertGreaterThan(restarted.bytesPerSecond ?? 0, 0)

        // A cancel stops every rank where it is; a resume continues from the units done.
        let cancelled = try HerdBinary.run(["cancel", String(id)], environment: env)
        let state = try store.job(id)
        let watched = try HerdBinary.fixture(["watch", String(id), "--once"], environment: env)
        XCTAssertTrue(watched.out.contains("MB/s"), watched.out)
        if state.state == .cancelled {
            XCTAssertEqual(cancelled.status, 0, cancelled.err)
            try HerdBinary.fixture(["resume", String(id)], environment: env)
        } else {
            // The job finished before the cancel reached it.
            XCTAssertEqual(state.state, .succeeded, state.message ?? "")
        }
        let done = try wait("its end") { $0.state.isFinal }
        XCTAssertEqual(done.state, .succeeded, done.message ?? "")
        XCTAssertEqual(done.step, done.totalSteps)
        XCTAssertEqual(try datasetBytes(dir + "/two-data"), reference, "killed, cancelled and resumed on two ranks: the one-rank run's bytes")
        let events = try RunEvent.readAll(path: dir + "/two-run/events.jsonl")
        let reported = events.filter { $0.event == .unit }.compactMap(\.unit), units = Set(reported)
        XCTAssertEqual(reported.count, units.count, "no unit prepared twice")
        XCTAssertTrue(units.allSatisfy { $0 < done.totalSteps })
        // A unit is done once its files are; its event follows. A rank killed
        // or stopped between the two leaves a unit done without an event: at
        // most one per rank per interruption (here two ranks, a kill and a cancel).
        XCTAssertGreaterThanOrEqual(units.count, done.totalSteps - 4, "every unit reported but those cut off")
        XCTAssertEqual(Set(events.filter { $0.event == .unit }.compactMap(\.rank)), [0, 1])
        XCTAssertEqual(events.filter { $0.event == .merge }.count, 1)
    }
}

