import XCTest
import Foundation
import Herd

/// Hugging Face interop against transformers' own output (fixtures made by
/// Tests/Data/make_hf_fixtures.py), and generation with the KV cache.
final class InteropTests: XCTestCase {
    let fixture = "Tests/Data/hf-tiny-llama"
    struct Expected: Decodable { var prompt: [TokenID]; var logits: [[Float]]; var greedy: [TokenID] }
    var expected: Expected { try! JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: fixture + ".json"))) }

    func testImportedModelMatchesTransformers() throws {
        let model = try ModelFiles.loadModel(fixture)
        XCTAssertEqual(model.config.kvHeads, 2)
        let e = expected
        let gen = Generator(model: model, batch: 1)
        let logits = gen.logits(for: e.prompt)
        for (mine, theirs) in zip(logits, e.logits) {
            let err = GradientCheck.relativeError(mine.map(Double.init), theirs.map(Double.init))
            XCTAssertLessThan(err, 1e-5, "logits against transformers")
        }
        let out = Generator(model: model, batch: 1).generate([e.prompt], options: .init(temperature: 0, maxNewTokens: e.greedy.count))
        XCTAssertEqual(out[0], e.greedy, "the same greedy continuation as transformers")
    }

    func testTheKVCacheGivesTheFullForwardsLogits() throws {
        let model = try ModelFiles.loadModel(fixture)
        let tokens: [TokenID] = [1, 7, 99, 3, 250, 18, 18, 40]
        let acts = Activations(config: model.config, batch: 1, seqLen: tokens.count)
        let full = try forwardLogits(model, tokens, acts)
        let cached = Generator(model: model, batch: 1).logits(for: tokens).map(logSoftmax)
        for t in 0..<tokens.count {
            XCTAssertLessThan(GradientCheck.relativeError(cached[t].map(Double.init), full[t].map(Double.init)), 1e-5, "position \(t)")
        }
    }

    func forwardLogits(_ model: Llama, _ tokens: [TokenID], _ acts: Activations) throws -> [[Float]] {
        // The training forward's cross-entropy against every possible target gives the log-softmax;
        // comparing logits up to a per-row constant is what matters, so compare softmaxes.
        let V = model.config.vocabSize
        var out: [[Float]] = []
        for t in 0..<tokens.count {
            var row = [Float](repeating: 0, count: V)
            for v in 0..<V {
                var targets = [TokenID](repeating: CrossEntropy.ignoreIndex, count: tokens.count)
                targets[t] = TokenID(v)
                row[v] = Float(-model.loss(tokens: tokens, targets: targets, acts: acts).lossSum)
            }
            out.append(row)
        }
        return out
    }

    func logSoftmax(_ r: [Float]) -> [Float] {
        let m = r.max()!
        let lse = m + log(r.map { exp($0 - m) }.reduce(0, +))
        return r.map { $0 - lse }
    }

    func testBatchedGenerationEqualsOneAtATime() throws {
        let model = try ModelFiles.loadModel(fixture)
        let prompts: [[TokenID]] = [[1, 5], [1, 72, 101, 114], [9], [1, 2, 3, 4, 5, 6]]
        let opts = SamplingOptions(temperature: 0.9, topP: 0.9, seed: 42, maxNewTokens: 12)
        let together = Generator(model: model, batch: 8).generate(prompts, options: opts)
        for i in prompts.indices {
            // Sequence i's random stream is keyed by its index, so run it at index i.
            let alone = Generator(model: model, batch: 8).generate(Array(prompts.prefix(i + 1)), options: opts)[i]
            XCTAssertEqual(together[i].count, 12)
            XCTAssertEqual(alone, together[i], "prompt \(i)")
        }
        let stop = Generator(model: model, batch: 2).generate([[1, 72, 101, 114, 100]],
                                                              options: .init(temperature: 0, maxNewTokens: 20, eos: expected.greedy[2]))
        XCTAssertEqual(stop[0], Array(expected.greedy.prefix(3)), "stops at EOS, which is included")
    }

    func testBF16AndRoundTrips() throws {
        let fp32 = try HuggingFace.load(dir: fixture), bf16 = try HuggingFace.load(dir: fixture + "-bf16")
        for (name, w) in fp32.tensors {
            XCTAssertEqual(bf16.tensors[name], w.map { BFloat16.toFloat(BFloat16.fromFloat($0)) }, name)
        }
        // Meta ⇄ HF permutation is a bijection, and export → import is the identity.
        let w = (0..<(4 * 8 * 3)).map(Float.init)
        XCTAssertEqual(HuggingFace.permuteFromHF(HuggingFace.permuteToHF(w, heads: 4, cols: 3), heads: 4, cols: 3), w)
        XCTAssertNotEqual(HuggingFace.permuteToHF(w, heads: 4, cols: 3), w)
        let out = NSTemporaryDirectory() + "herd-export-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        try HuggingFace.save(config: fp32.config, tensors: fp32.tensors, to: out)
        let back = try HuggingFace.load(dir: out)
        XCTAssertEqual(back.config, fp32.config)
        XCTAssertEqual(back.tensors, fp32.tensors)
        // Sharded: the same tensors split over two files with an index.
        let sharded = out + "-sharded"
        defer { try? FileManager.default.removeItem(atPath: sharded) }
        try FileManager.default.createDirectory(atPath: sharded, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixture + "/config.json", toPath: sharded + "/config.json")
        let all = try SafetensorsFile(path: fixture + "/model.safetensors")
        let names = all.entries.keys.sorted()
        var map: [String: String] = [:]
        for (i, part) in [Array(names.prefix(names.count / 2)), Array(names.dropFirst(names.count / 2))].enumerated() {
            let file = "model-0000\(i + 1)-of-00002.safetensors"
            try SafetensorsFile.write(try part.map { ($0, all.entries[$0]!.shape, try all.floats($0)) }, to: sharded + "/" + file)
            for n in part { map[n] = file }
        }
        try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": map]).write(to: URL(fileURLWithPath: sharded + "/model.safetensors.index.json"))
        XCTAssertEqual(try HuggingFace.load(dir: sharded).tensors, fp32.tensors)
        // The file transformers wrote and the one Herd wrote hold the same bytes per tensor.
        let theirs = try SafetensorsFile(path: fixture + "/model.safetensors"), ours = try SafetensorsFile(path: out + "/model.safetensors")
        for name in theirs.entries.keys { XCTAssertEqual(try theirs.floats(name), try ours.floats(name), name) }
    }

    func testExportedModelLoadsInTransformers() throws {
        let env = ProcessInfo.processInfo.environment
        let python = env["HERD_PYTHON"] ?? env["HERD_TEST_PYTHON"] ?? "/tmp/torchenv/bin/python"
        let usable = FileManager.default.isExecutableFile(atPath: python)
            && (try? Spawn.capture(python, ["-c", "import torch, transformers"]))?.status == 0
        try XCTSkipUnless(usable, "needs a python with torch and transformers (HERD_PYTHON, now \(python))")
        // A model trained by Herd (tiny-gqa on bytes, 30 steps), exported, then
        // continued greedily by transformers and by Herd.
        let dir = NSTemporaryDirectory() + "herd-hf-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try String(repeating: "It was the best of times, it was the worst of times. ", count: 200)
            .write(toFile: dir + "/corpus.txt", atomically: true, encoding: .utf8)
        let job = try JobManifest.parse(yaml: """
            kind: pretrain
            model: {preset: tiny-gqa, max_seq_len: 64}
            data: {corpus: \(dir)/corpus.txt, tokenizer: byte, seq_len: 32}
            batch: {sequences: 4}
            optimizer: {lr: 3e-3}
            schedule: {warmup_steps: 3}
            steps: 30
            checkpoint: {interval: 30}
            output: \(dir)/run
            """, file: "export-test")
        _ = try Trainer(manifest: job).run(output: { _ in })
        try ModelFiles.exportHuggingFace(checkpoint: dir + "/run", to: dir + "/hf", dtype: "F32")
        let prompt = Array("It was the ".utf8).map(TokenID.init)
        let herd = Generator(model: try ModelFiles.loadModel(dir + "/hf"), batch: 1).generate([prompt], options: .init(temperature: 0, maxNewTokens: 16))[0]
        let script = """
        import sys, torch
        from transformers import LlamaForCausalLM
        m = LlamaForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.float32).eval()
        out = m.generate(torch.tensor([[\(prompt.map(String.init).joined(separator: ","))]]), max_new_tokens=16, do_sample=False, eos_token_id=None, pad_token_id=0)
        print(" ".join(map(str, out[0].tolist()[\(prompt.count):])))
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", script, dir + "/hf"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let theirs = text.split(separator: "\n").last.map { $0.split(separator: " ").compactMap { TokenID($0) } } ?? []
        XCTAssertEqual(theirs, herd, "transformers continues Herd's export as Herd does")
    }

    func testBadFilesAreClearErrors() throws {
        let dir = NSTemporaryDirectory() + "herd-bad-hf-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let good = try Data(contentsOf: URL(fileURLWithPath: fixture + "/model.safetensors"))
        func expect(_ bytes: Data, _ text: String, line: UInt = #line) {
            let path = dir + "/x.safetensors"
            try! bytes.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try SafetensorsFile(path: path), line: line) { e in
                XCTAssertTrue("\(e)".hasPrefix(path + ": ") && "\(e)".contains(text), "\(e)", line: line)
            }
        }
        expect(Data(good.prefix(good.count - 100)), "lie outside")                 // truncated
        expect(Data(good.prefix(4)), "too short")
        expect(Data([0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]) + good.dropFirst(8), "header length")
        var lying = good
        let n = Int(good.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = String(decoding: good[8..<(8 + n)], as: UTF8.self)
        header = header.replacingOccurrences(of: "[32,32]", with: "[32,33]")
        lying.replaceSubrange(8..<(8 + n), with: Data(header.utf8).prefix(n))
        expect(lying, "needs")                                                        // shape that lies about size
        expect(Data(repeating: 0x41, count: 64), "header length")                    // not a safetensors file
        // A config that does not match the tensors.
        try FileManager.default.copyItem(atPath: fixture + "/model.safetensors", toPath: dir + "/model.safetensors")
        let config = try String(contentsOfFile: fixture + "/config.json", encoding: .utf8)
            .replacingOccurrences(of: "\"intermediate_size\": 64", with: "\"intermediate_size\": 96")
        try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HuggingFace.load(dir: dir)) { e in
            XCTAssertTrue("\(e)".contains("model.safetensors: model.layers.0.mlp.gate_proj.weight has shape [64, 32]; config.json implies [96, 32]"), "\(e)")
        }
    }
}
