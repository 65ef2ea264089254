import XCTest
import Foundation
import Herd

/// Supervised fine-tuning: the loss mask, packing, the demonstration
/// reader's errors, and an SFT job that starts from a pretrained run.
final class SFTTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-sft-\(getpid())"

    override class func setUp() { prepare { try HerdBinary.writeCorpus(in: dir) } }
    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    let dialogue = [ChatMessage(.system, "Answer briefly."), ChatMessage(.user, "What is 2+2?"), ChatMessage(.assistant, "4."),
                    ChatMessage(.user, "And 3+3?"), ChatMessage(.assistant, "6.")]

    func testByteChatFormatLearnsOnlyTheAnswersAndTheirEnd() throws {
        let (tokens, learned) = try ChatFormat.encode(dialogue, tokenizer: ByteTokenizer())
        let text = ByteTokenizer().decode(tokens)
        XCTAssertEqual(text, "\u{02}[INST] <<SYS>>\nAnswer briefly.\n<</SYS>>\n\nWhat is 2+2? [/INST] 4. \u{03}\u{02}[INST] And 3+3? [/INST] 6. \u{03}")
        let learnedText = ByteTokenizer().decode(zip(tokens, learned).filter(\.1).map(\.0))
        XCTAssertEqual(learnedText, " 4. \u{03} 6. \u{03}")
    }

    /// Ghost Attention's dialogues (`"loss": "last_answer"`): only the last
    /// answer and its end carry the loss, not the earlier answers — in the
    /// mask, and in the packed sequence's targets; read from JSON lines.
    func testLastAnswerOnlyLossCoversOnlyTheLastAnswer() throws {
        let gatt = Demonstration(id: "g", dialogue: dialogue, loss: .lastAnswer)
        let (tokens, learned) = try gatt.encoded(tokenizer: ByteTokenizer())
        XCTAssertEqual(ByteTokenizer().decode(zip(tokens, learned).filter(\.1).map(\.0)), " 6. \u{03}")
        XCTAssertEqual(try Demonstration(id: "s", dialogue: dialogue).encoded(tokenizer: ByteTokenizer()).learned,
                       try ChatFormat.encode(dialogue, tokenizer: ByteTokenizer()).assistant, "SFT's default: every answer")
        let d = try DemonstrationDataset(train: [gatt], validation: [], tokenizer: ByteTokenizer(), seqLen: 128)
        let s = try XCTUnwrap(d.train.first)
        let targetText = ByteTokenizer().decode(s.targets.filter { $0 >= 0 })
        XCTAssertEqual(targetText, " 6. \u{03}", "the packed targets: the last answer only")
        XCTAssertEqual(s.counted, 5)
        // In a file: the field is read, and a wrong value names the line.
        let path = Self.dir + "/gatt.jsonl"
        try [#"{"id": "a", "dialogue": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "loss": "last_answer"}"#,
             #"{"id": "b", "dialogue": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "loss": "every_other"}"#]
            .joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try JSONLines.demonstrations(path: path)) { e in
            XCTAssertTrue("\(e)".contains(":2"), "\(e)")
            XCTAssertTrue("\(e)".contains("loss"), "\(e)")
        }
        XCTAssertEqual(ChatFormat.lastAnswerOnly([false, true, true, false, true, true, false]), [false, false, false, false, true, true, false])
        XCTAssertEqual(ChatFormat.lastAnswerOnly([false, false]), [false, false])
    }

    /// Changing the targets of user and system tokens leaves the loss and
    /// every gradient unchanged; changing one answer token's target does not.
    func testLossIgnoresPromptTokens() throws {
        var config = LlamaConfig.presets["tiny-gqa"]!
        config.vocabSize = 256
        let (stream, learned) = try ChatFormat.encode(dialogue, tokenizer: ByteTokenizer())
        let T = stream.count - 1
        config.maxSeqLen = T
        let model = try Llama(config: config)
        model.initialize(seed: 4)
        let acts = Activations(config: config, batch: 1, seqLen: T)
        let inputs = Array(stream.prefix(T)), next = Array(stream.dropFirst()), mask = Array(learned.dropFirst())
        func lossAndGrads(_ next: [TokenID]) -> (Double, [Float]) {
            let targets = PackedSequence.targets(next: next, learned: mask)
            model.zeroGradients()
            let r = model.forwardBackward(tokens: inputs, targets: targets, acts: acts, lossScale: 1)
            return (r.lossSum, Array(UnsafeBufferPointer(start: model.grads.base, count: model.grads.count)))
        }
        let (loss, grads) = lossAndGrads(next)
        var promptChanged = next, answerChanged = next
        for i in mask.indices where !mask[i] { promptChanged[i] = (next[i] + 17) % 256 }
        let answer = try XCTUnwrap(mask.firstIndex(of: true))
        answerChanged[answer] = (next[answer] + 1) % 256
        let (l1, g1) = lossAndGrads(promptChanged)
        XCTAssertEqual(l1, loss)
        XCTAssertEqual(g1, grads)
        let (l2, g2) = lossAndGrads(answerChanged)
        XCTAssertNotEqual(l2, loss)
        XCTAssertNotEqual(g2, grads)
        XCTAssertEqual(PackedSequence(stream: stream, supervised: learned, seqLen: T).counted, mask.filter { $0 }.count)
    }

    func testPackingKeepsExamplesWholeAndInOrder() throws {
        let demos = (0..<10).map { i in Demonstration(id: "d\(i)", dialogue: [ChatMessage(.user, "say \(i)"), ChatMessage(.assistant, String(repeating: "x", count: i * 7))]) }
        let d = try DemonstrationDataset(train: demos, validation: [], tokenizer: ByteTokenizer(), seqLen: 64)
        // An example is 25 + 7i tokens (the separator, STX, "[INST] say i [/INST]", " ", the answer, " ", ETX): i ≥ 6 do not fit 65.
        XCTAssertEqual(d.truncated, 4)
        var seen: [String] = []
        for s in d.train {
            let text = ByteTokenizer().decode(s.tokens.filter { $0 != 0 })
            XCTAssertTrue(text.hasPrefix("\u{1E}" + ChatFormat.textBOS), "a sequence starts at an example's separator")
            for example in text.split(separator: "\u{1E}") {
                XCTAssertTrue(example.hasPrefix(ChatFormat.textBOS + "[INST] say "), String(example))
                seen.append(String(example.dropFirst(12).prefix(1)))
            }
        }
        XCTAssertEqual(seen, (0..<10).map(String.init), "whole examples, in order")
        // An epoch visits every packed sequence once.
        let epoch = try (0..<d.train.count).map { try tokens(d, $0) }
        XCTAssertEqual(Set(epoch), Set(d.train.map(\.tokens)))
        XCTAssertNotEqual(try (0..<d.train.count).map { try tokens(d, d.train.count + $0) }, epoch, "the next epoch's order differs")
    }

    /// With the separator, a packed example's logits are those of the
    /// example alone: nothing attends across it (RoPE makes the shift in
    /// position immaterial). Without it, the second example sees the first.
    func testPackedExamplesDoNotAttendToEachOther() throws {
        var config = LlamaConfig.presets["tiny-gqa"]!
        config.vocabSize = 256
        config.maxSeqLen = 96
        let model = try Llama(config: config)
        model.initialize(seed: 7, std: 0.3)
        let a = try ChatFormat.encode([ChatMessage(.user, "first question"), ChatMessage(.assistant, "one")], tokenizer: ByteTokenizer()).tokens
        let b = try ChatFormat.encode([ChatMessage(.user, "second"), ChatMessage(.assistant, "two")], tokenizer: ByteTokenizer()).tokens
        let sep = try DemonstrationDataset.separator(for: ByteTokenizer())
        let packed = [sep] + a + [sep] + b
        /// −log p(token 5) at each position of the second example (and its
        /// separator): a function of that position's logits.
        func losses(_ tokens: [TokenID], separator: TokenID?) -> [Double] {
            let acts = Activations(config: config, batch: 1, seqLen: tokens.count)
            acts.separator = separator
            return ((tokens.count - b.count - 1)..<tokens.count).map { position in
                var targets = [TokenID](repeating: CrossEntropy.ignoreIndex, count: tokens.count)
                targets[position] = 5
                return model.loss(tokens: tokens, targets: targets, acts: acts).lossSum
            }
        }
        let alone = losses([sep] + b, separator: sep)
        let inPack = losses(packed, separator: sep)
        XCTAssertEqual(alone.count, inPack.count)
        for (x, y) in zip(alone, inPack) { XCTAssertEqual(x, y, accuracy: 1e-4 * max(1, abs(x))) }
        let leaking = losses(packed, separator: nil)
        XCTAssertGreaterThan(zip(alone, leaking).map { abs($0 - $1) }.max()!, 1e-3, "without the separator the second example sees the first")
    }

    func tokens(_ d: DemonstrationDataset, _ index: Int) throws -> [TokenID] {
        var t = [TokenID](repeating: 0, count: d.seqLen), g = [TokenID](repeating: 0, count: d.seqLen)
        try d.trainWindow(seed: 9, index: index, tokens: &t, targets: &g)
        return t
    }

    func testBadSFTManifestsNameTheField() throws {
        func expect(_ yaml: String, _ field: String, _ text: String, line: UInt = #line) {
            XCTAssertThrowsError(try JobManifest.parse(yaml: yaml, file: "sft.yaml"), line: line) { e in
                guard let e = e as? ManifestError else { return XCTFail("\(e)", line: line) }
                XCTAssertEqual(e.field, field, "\(e)", line: line)
                XCTAssertTrue(e.message.contains(text), "\(e)", line: line)
            }
        }
        expect("kind: sft\ndata: {demonstrations: d.jsonl}", "init", "required")
        expect("kind: sft\ninit: /nowhere/run\ndata: {demonstrations: d.jsonl}", "init", "no such run")
        expect("kind: sft\ninit: \(Self.dir)\nmodel: {preset: tiny-gqa}\ndata: {demonstrations: /nowhere.jsonl}", "data.demonstrations", "no such file")
        expect("kind: pretrain\nmodel: {preset: tiny-gqa}\ndata: {corpus: \(Self.dir)/corpus.txt, tokenizer: byte, seq_len: 16}\nbatch: {sequences: 2}\noptimizer: {lr: 1e-3}\nsteps: 2\nepochs: 2",
               "epochs", "only for kinds sft and reward")
    }

    func testBadDemonstrationLinesAreNamed() throws {
        let path = Self.dir + "/bad.jsonl"
        func expect(_ lines: [String], _ text: String, line: UInt = #line) throws {
            try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try JSONLines.demonstrations(path: path), line: line) {
                XCTAssertTrue("\($0)".contains(text), "\($0)", line: line)
            }
        }
        let good = #"{"id": "a", "dialogue": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}"#
        try expect([good, "", "{not json"], "bad.jsonl:3: not a JSON object")
        try expect([good, #"{"dialogue": []}"#], "bad.jsonl:2: id: required field is missing")
        try expect([#"{"id": "b", "dialogue": [{"role": "robot", "content": "x"}]}"#], "bad.jsonl:1: dialogue[0].role")
        try expect([#"{"id": "c", "dialogue": [{"role": "assistant", "content": "x"}]}"#], "bad.jsonl:1: dialogue[0]: expected role user, found assistant")
        try expect([good, #"{"id": "d", "dialogue": [{"role": "user", "content": "x"}]}"#], "bad.jsonl:2: dialogue: a demonstration ends with the assistant's answer")
        try [good, good].joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try JSONLines.demonstrations(path: path).count, 2)
    }

    /// Pretrain a byte-level model briefly, then fine-tune it on
    /// demonstrations of one task: the held-out SFT loss falls, and the job
    /// started from the pretrained weights (not from a fresh initialisation).
    func testSFTJobStartsFromAPretrainedRunAndLearnsTheAnswers() throws {
        let pre = Self.dir + "/pre.yaml", preRun = Self.dir + "/run-pre"
        try """
            kind: pretrain
            model: {preset: tiny-gqa, max_seq_len: 128}
            data: {corpus: \(Self.dir)/corpus.txt, tokenizer: byte, seq_len: 64}
            batch: {sequences: 8}
            optimizer: {lr: 3e-3}
            schedule: {warmup_steps: 10}
            steps: 60
            threads: 2
            checkpoint: {interval: 60}
            output: \(preRun)
            """.write(toFile: pre, atomically: true, encoding: .utf8)
        let r1 = try HerdBinary.run(["run", pre])
        XCTAssertEqual(r1.status, 0, r1.err)

        // The letter after a letter: an answer that depends on the prompt.
        var g = SplitMix64(seed: 3)
        var lines: [String] = []
        for i in 0..<400 {
            let k = Int(g.next() % 25)
            let letter = { (k: Int) in String(Character(Unicode.Scalar(UInt8(97 + k)))) }
            let d = Demonstration(id: "r\(i)", dialogue: [ChatMessage(.user, "after \(letter(k))"), ChatMessage(.assistant, letter(k + 1))])
            lines.append(String(decoding: try JSONEncoder().encode(d), as: UTF8.self))
        }
        try lines.joined(separator: "\n").write(toFile: Self.dir + "/demos.jsonl", atomically: true, encoding: .utf8)
        let sft = Self.dir + "/sft.yaml", sftRun = Self.dir + "/run-sft"
        try """
            kind: sft
            init: \(preRun)
            data: {demonstrations: \(Self.dir)/demos.jsonl, seq_len: 64, val_fraction: 0.1}
            batch: {sequences: 8}
            optimizer: {lr: 2e-3}
            epochs: 10
            eval: {interval: 10}
            threads: 2
            output: \(sftRun)
            """.write(toFile: sft, atomically: true, encoding: .utf8)
        let m = try JobManifest.load(path: sft)
        XCTAssertEqual(m.kind, .sft)
        XCTAssertEqual(m.model.config.maxSeqLen, 128, "the shape comes from the init weights")
        let r2 = try HerdBinary.run(["run", sft])
        XCTAssertEqual(r2.status, 0, r2.err)
        XCTAssertTrue(r2.out.contains("starting from the weights of \(preRun)"), r2.out)
        let events = try RunDirectory(sftRun).readEvents()
        let evals = events.filter { $0.event == .eval }.compactMap(\.validationLoss)
        XCTAssertGreaterThanOrEqual(evals.count, 2)
        XCTAssertLessThan(evals.last!, 0.5 * evals.first!, "held-out answer loss \(evals)")
        let start = try XCTUnwrap(events.first { $0.event == .start })
        XCTAssertEqual(start.steps, m.steps)

        // The same fine-tuning as two data-parallel mpirun ranks: the same losses.
        let sft2 = Self.dir + "/sft-dp2.yaml"
        try (try String(contentsOfFile: sft, encoding: .utf8) + "\nparallelism: {data: 2}\n").write(toFile: sft2, atomically: true, encoding: .utf8)
        let r3 = try HerdBinary.run(["run", sft2, "--output", sftRun + "-dp2", "--steps", "30"])
        XCTAssertEqual(r3.status, 0, r3.err)
        let r4 = try HerdBinary.run(["run", sft, "--output", sftRun + "-dp1", "--steps", "30"])
        XCTAssertEqual(r4.status, 0, r4.err)
        func losses(_ run: String) throws -> [Double] {
            try RunDirectory(run).readEvents().filter { $0.event == .step }.compactMap(\.loss)
        }
        let one = try losses(sftRun + "-dp1"), two = try losses(sftRun + "-dp2")
        XCTAssertEqual(one.count, two.count)
        XCTAssertFalse(one.isEmpty)
        for (a, b) in zip(one, two) { XCTAssertEqual(a, b, accuracy: 1e-4 * abs(a)) }
    }
}
