import XCTest
import Foundation
import Herd

/// Bad input is answered, never crashed on: thousands of mutated job
/// manifests, pipeline manifests and cluster files (the shipped ones,
/// mutated with a seeded generator) are each read, resolved and planned
/// in this process — a trap or a stack overflow would end the test run —
/// and every refusal is a ManifestError naming its file and a field or line.
/// Then the cases found by hand, through the CLI and through `herd serve`.
final class ManifestFuzzTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-fuzz-\(getpid())"

    override class func setUp() {
        prepare {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try HerdBinary.writeCorpus(in: dir)
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static let values = [
        "0", "-1", "1", "2", "3", "7", "1e308", "-1e308", "1e-320", "99999999999999999999", "9223372036854775807",
        "100000000", "1000000000000", "4096", "65536", "nan", ".inf", "-.inf", "''", "\"\"", "[]", "{}", "null", "~", "true",
        "no", "../../x", "/dev/zero", "/", "runs", String(repeating: "x", count: 300), "é×—😀", "[1, [2, [3]]]", "{a: {b: {c: 1}}}",
        "\"unterminated", "[unclosed", "a: b: c", "- item", "!!binary AAAA", "&anchor x", "*alias", "0x10", "1_000", "0.5", "-0.0",
    ]

    static func mutate<G: RandomNumberGenerator>(_ text: String, _ g: inout G) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for _ in 0..<Int.random(in: 1...3, using: &g) where !lines.isEmpty {
            let i = Int.random(in: 0..<lines.count, using: &g)
            switch Int.random(in: 0..<9, using: &g) {
            case 0, 1, 2:   // a value replaced
                if let r = lines[i].range(of: ": ") {
                    lines[i] = String(lines[i][..<r.upperBound]) + values.randomElement(using: &g)!
                } else { lines[i] += " " + values.randomElement(using: &g)! }
            case 3: lines.remove(at: i)
            case 4: lines.insert(lines[i], at: i)
            case 5: lines.swapAt(i, Int.random(in: 0..<lines.count, using: &g))
            case 6: lines.insert(["bogus: 1", "  extra: 2", "- 3", "model: {layers: 100000000}", "name: ../../x",
                                  "batch: {sequences: 1000000000000}", "parallelism: {data: 0}", "steps: -5"].randomElement(using: &g)!, at: i)
            case 7: lines[i] = String(repeating: " ", count: Int.random(in: 0...6, using: &g)) + lines[i].trimmingCharacters(in: .whitespaces)
            default:   // cut short
                let cut = lines[i].index(lines[i].startIndex, offsetBy: Int.random(in: 0...lines[i].count, using: &g))
                lines[i] = String(lines[i][..<cut])
            }
        }
        return lines.joined(separator: "\n")
    }

    /// A refusal says where: the file, and a field or a line.
    func checkRefusal(_ error: Error, file: String, _ text: String) {
        guard let e = error as? ManifestError else {
            return   // errors of the data a resolved job reads (a tokenizer file, say) are not the parser's
        }
        XCTAssertTrue(e.file.hasPrefix(file), "\(e.file) is not \(file)")
        XCTAssertFalse(e.message.isEmpty)
        XCTAssertTrue(!e.field.isEmpty || e.message.contains("line") || e.message.contains("YAML") || e.message.contains("empty")
                      || e.message.contains("mapping") || e.message.contains("kind"), "a refusal that names no field or line: \(e)\n---\n\(text)")
    }

    func shipped(_ folder: String, where keep: (String) -> Bool) throws -> [(String, String)] {
        try FileManager.default.contentsOfDirectory(atPath: folder).sorted().filter { $0.hasSuffix(".yaml") }
            .map { (folder + "/" + $0, try String(contentsOfFile: folder + "/" + $0, encoding: .utf8)) }.filter { keep($0.1) }
    }

    func testThousandsOfMutatedManifestsAreAnsweredNeverCrashedOn() throws {
        var g = SplitMix64(seed: 18)
        let jobs = try shipped("jobs") { !$0.contains("iterations:") }
        let pipelines = try shipped("jobs") { $0.contains("iterations:") }
        let clusters = try shipped("clusters") { _ in true }
        XCTAssertGreaterThan(jobs.count, 10)
        XCTAssertGreaterThan(pipelines.count, 1)
        var accepted = 0, refused = 0
        for n in 0..<3000 {
            let (file, seed) = jobs[n % jobs.count]
            let text = Self.mutate(seed, &g)
            do {
                let m = try JobManifest.parse(yaml: text, file: file, overrides: .init(planOnly: true), base: Self.dir)
                let model = try ResolvedJob.shape(of: m).0
                let here = ClusterSpec.thisMachine(slots: m.parallelism.world, cores: 2)
                _ = try PlanReport.make(manifest: m, model: model, cluster: here)
                accepted += 1
            } catch { checkRefusal(error, file: file, text); refused += 1 }
        }
        for n in 0..<1000 {
            let (file, seed) = pipelines[n % pipelines.count]
            let text = Self.mutate(seed, &g)
            do { _ = try PipelineManifest.parse(yaml: text, file: file, checkFiles: false) } catch { checkRefusal(error, file: file, text) }
        }
        for n in 0..<1000 {
            let (file, seed) = clusters[n % clusters.count]
            let text = Self.mutate(seed, &g)
            do { _ = try ClusterSpec.parse(yaml: text, file: file) } catch { checkRefusal(error, file: file, text) }
        }
        // Found by a differential run of the old and new parsers: a node group of 10^12 hosts, each named, exhausted memory.
        for count in ["1000000000000", "9223372036854775807"] {
            let text = "launcher: mpirun\nnodes:\n  - {count: \(count), slots: 2, cores: 2, memory_gb: 24, peak_tflops: 0.1}\n"
            XCTAssertThrowsError(try ClusterSpec.parse(yaml: text, file: "huge.yaml")) { XCTAssertTrue("\($0)".contains("count"), "\($0)") }
        }
        // The mutations are neither all harmless nor all fatal.
        XCTAssertGreaterThan(accepted, 100)
        XCTAssertGreaterThan(refused, 100)
    }

    static let base = """
        kind: pretrain
        name: fuzz
        model: {preset: tiny-gqa}
        data: {corpus: \(dir)/corpus.txt, tokenizer: byte, seq_len: 16}
        batch: {sequences: 8}
        optimizer: {lr: 1e-3}
        steps: 10
        """

    static let prepare = """
        kind: prepare
        name: fuzz-prepare
        prepare: {inputs: [\(dir)/corpus.txt], tokenizer: byte, out: \(dir)/prepared}
        """

    /// Each case found by hand: what field it names.
    static var cases: [(name: String, text: String, field: String)] {
        [
            ("nested 1,000 deep in blocks", "kind: pretrain\n" + (0..<1000).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n"), "line"),
            ("nested 5,000 deep in mappings", "kind: pretrain\nmodel: " + String(repeating: "{a: ", count: 5000) + "1" + String(repeating: "}", count: 5000), "line"),
            ("nested 5,000 deep in brackets", "kind: pretrain\nmodel: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000), "line"),
            ("5,000 lists on one line", "kind: pretrain\nmodel:\n" + String(repeating: "- ", count: 5000) + "x", "line"),
            ("aliases of aliases", "kind: pretrain\na: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]", "line"),
            ("100,000,000 layers", base.replacingOccurrences(of: "{preset: tiny-gqa}", with: "{preset: tiny-gqa, layers: 100000000}"), "model.layers"),
            ("a name that climbs out of runs/", base.replacingOccurrences(of: "name: fuzz", with: "name: ../../x"), "name"),
            ("a global batch of 10^12", base.replacingOccurrences(of: "sequences: 8", with: "sequences: 1000000000000"), "batch.sequences"),
            ("a corpus at /dev/zero", base.replacingOccurrences(of: "\(dir)/corpus.txt", with: "/dev/zero"), "data.corpus"),
            ("an output that is a file", base + "\noutput: \(dir)/corpus.txt", "output"),
            ("a mix entry naming no dataset", base.replacingOccurrences(of: "data: {corpus: \(dir)/corpus.txt, tokenizer: byte, seq_len: 16}",
                                                                        with: "data: {mix: [{shards: \(dir)/nothing, weight: 1}], seq_len: 16}"), "data.mix[0].shards"),
            ("a mix weight of -1", base.replacingOccurrences(of: "data: {corpus: \(dir)/corpus.txt, tokenizer: byte, seq_len: 16}",
                                                               with: "data: {mix: [{shards: \(dir), weight: -1}], seq_len: 16}"), "data.mix[0].weight"),
            ("a prepare job with a model", prepare + "\nmodel: {preset: tiny-gqa}", "model"),
            ("a prepare job on tensor ranks", prepare + "\nparallelism: {data: 2, tensor: 2}", "parallelism"),
            ("a prepare job whose inputs match nothing", prepare.replacingOccurrences(of: "corpus.txt]", with: "nothing-*.jsonl]"), "prepare.inputs"),
            ("a prepare job with a corpus for a tokenizer", prepare.replacingOccurrences(of: "tokenizer: byte", with: "tokenizer: \(dir)/corpus.txt"), "prepare.tokenizer"),
            ("a prepare job that shrinks", prepare + "\nrestart: {on_node_loss: shrink}", "restart.on_node_loss"),
            ("a prepare job writing into a file", prepare.replacingOccurrences(of: "out: \(dir)/prepared", with: "out: \(dir)/corpus.txt"), "prepare.out"),
            ("a prepare section in a training job", base + "\nprepare: {inputs: [x], tokenizer: byte, out: y}", "prepare"),
            ("a mix beside a corpus", base.replacingOccurrences(of: "tokenizer: byte, seq_len: 16}",
                                                                  with: "tokenizer: byte, seq_len: 16, mix: [{shards: x, weight: 1}]}"), "data.mix"),
        ]
    }

    func testEachCaseFoundByHandIsAFieldNamedError() throws {
        for c in Self.cases {
            XCTAssertThrowsError(try JobManifest.parse(yaml: c.text, file: "case.yaml", base: Self.dir), c.name) { error in
                let e = error as? ManifestError
                XCTAssertNotNil(e, "\(c.name): \(error)")
                XCTAssertTrue(e.map { $0.field == c.field || $0.message.contains(c.field) } ?? false, "\(c.name): \(error)")
            }
        }
        // A model of some 500,000 GiB passes every field's limit; herd validate refuses it for this machine.
        let huge = Self.dir + "/huge-model.yaml"
        try Self.base.replacingOccurrences(of: "model: {preset: tiny-gqa}", with: "model: {dim: 65536, layers: 2048, heads: 512, ffn_dim: 262144, vocab_size: 32000}")
            .write(toFile: huge, atomically: true, encoding: .utf8)
        let r = try HerdBinary.run(["validate", huge])
        XCTAssertEqual(r.status, 2, r.out + r.err)
        XCTAssertTrue(r.err.contains("each rank needs") && r.err.contains("this machine"), r.err)
    }

    /// `herd serve` answers each case 400 (naming the field) and keeps serving.
    func testTheServerAnswersEachBadManifestAndKeepsServing() throws {
        let server = try ServeProcess(home: Self.dir + "/home")
        defer { server.stop() }
        for c in Self.cases {
            let body = try JSONSerialization.data(withJSONObject: ["manifest": c.text])
            let a = try server.request("/api/jobs", method: "POST", headers: ["Content-Type": "application/json"], body: body)
            XCTAssertEqual(a.status, 400, "\(c.name): \(a.text)")
            XCTAssertTrue(a.text.contains(c.field), "\(c.name): \(a.text)")
            XCTAssertEqual(try server.request("/api/jobs").status, 200, "the server stopped answering after: \(c.name)")
        }
        XCTAssertTrue(server.process.isRunning)
    }
}
