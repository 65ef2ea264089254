import XCTest
import Foundation
import Herd

/// Bad manifests fail before training, naming the field and what was expected.
final class ManifestTests: XCTestCase {
    var corpus: String!

    override func setUpWithError() throws {
        corpus = NSTemporaryDirectory() + "herd-manifest-test-corpus.txt"
        try String(repeating: "To be, or not to be, that is the question.\n", count: 50)
            .write(toFile: corpus, atomically: true, encoding: .utf8)
    }

    func manifest(model: String = "  preset: shakespeare-char", extra: String = "", steps: String = "steps: 10",
                  corpusLine: String? = nil) -> String {
        """
        name: t
        kind: pretrain
        model:
        \(model)
        data:
          \(corpusLine ?? "corpus: \(corpus!)")
          tokenizer: char
          seq_len: 16
        batch:
          sequences: 4
        optimizer:
          lr: 1e-3
        \(steps)
        \(extra)
        """
    }

    func expectError(_ yaml: String, field: String, contains text: String, line: UInt = #line) {
        XCTAssertThrowsError(try JobManifest.parse(yaml: yaml, file: "jobs/t.yaml"), line: line) { error in
            guard let e = error as? ManifestError else { return XCTFail("not a ManifestError: \(error)", line: line) }
            XCTAssertEqual(e.field, field, "\(e)", line: line)
            XCTAssertTrue(e.message.contains(text), "\(e)", line: line)
            XCTAssertTrue(e.description.hasPrefix("jobs/t.yaml: \(field): "), e.description, line: line)
        }
    }

    func testAGoodManifestParses() throws {
        let m = try JobManifest.parse(yaml: manifest(), file: "jobs/t.yaml")
        XCTAssertEqual(m.steps, 10)
        XCTAssertEqual(m.batch.sequences, 4)
        XCTAssertEqual(m.model.config.dim, 128)
        XCTAssertEqual(m.optimizer.adamw.beta2, 0.95, "the paper's default when not given")
        XCTAssertEqual(m.schedule.warmupSteps, 2000)
        XCTAssertEqual(m.schedule.minRatio, 0.1)
    }

    func testRestartPolicyAndMonitor() throws {
        let m = try JobManifest.parse(yaml: manifest(extra: """
            restart: {max_restarts: 5, backoff_seconds: 2, max_backoff_seconds: 10}
            monitor: {heartbeat_seconds: 1, hang_timeout_seconds: 30}
            """), file: "jobs/t.yaml")
        XCTAssertEqual(m.restart.maxRestarts, 5)
        XCTAssertEqual(m.monitor.hangTimeoutSeconds, 30)
        // Exponential backoff from 2 s, capped at 10 s.
        XCTAssertEqual((1...5).map { m.restart.delay(beforeRestart: $0) }, [2, 4, 8, 10, 10])
        let defaults = try JobManifest.parse(yaml: manifest(), file: "jobs/t.yaml")
        XCTAssertEqual(defaults.restart.maxRestarts, 3)
        XCTAssertEqual(defaults.monitor.heartbeatSeconds, 10)
        expectError(manifest(extra: "restart: {max_restarts: -1}"), field: "restart.max_restarts", contains: "at least 0")
        expectError(manifest(extra: "restart: {retries: 3}"), field: "restart.retries", contains: "unknown field")
        expectError(manifest(extra: "monitor: {heartbeat_seconds: 10, hang_timeout_seconds: 15}"),
                    field: "monitor.hang_timeout_seconds", contains: "at least twice monitor.heartbeat_seconds")
        expectError(manifest(extra: "monitor: {heartbeat_seconds: 1}\nmonitor: {hang_timeout_seconds: 4}"), field: "monitor", contains: "given twice")
        expectError(manifest(extra: "restart: {on_node_loss: shrink, on_node_loss: wait}"), field: "restart.on_node_loss", contains: "given twice")
        expectError(manifest(extra: "restart: {on_node_loss: pray}"), field: "restart.on_node_loss", contains: "expected wait")
        XCTAssertTrue(try JobManifest.parse(yaml: manifest(extra: "restart: {on_node_loss: shrink}"), file: "jobs/t.yaml").restart.shrinkOnNodeLoss)
        expectError(manifest(extra: "restart: {grow_check_seconds: 5}"), field: "restart.grow_check_seconds", contains: "only with on_node_loss: shrink")
        expectError(manifest(extra: "restart: {on_node_loss: shrink, grow_check_seconds: -1}"), field: "restart.grow_check_seconds", contains: "must be at least 0")
        XCTAssertEqual(try JobManifest.parse(yaml: manifest(extra: "restart: {on_node_loss: shrink, grow_check_seconds: 0}"), file: "jobs/t.yaml").restart.growCheckSeconds, 0)
    }

    /// `zero: 0–3`, with `zero1: true` the older spelling of 1.
    func testZeROStage() throws {
        func stage(_ line: String) throws -> Int {
            try JobManifest.parse(yaml: manifest(extra: "parallelism: {data: 2, \(line)}"), file: "jobs/t.yaml").parallelism.zero
        }
        XCTAssertEqual(try stage("zero: 3"), 3)
        XCTAssertEqual(try stage("zero1: true"), 1)
        XCTAssertEqual(try stage("zero1: false"), 0)
        XCTAssertEqual(try stage("zero: 2, zero1: true"), 2)
        XCTAssertEqual(try stage("tensor: 1"), 0)
        expectError(manifest(extra: "parallelism: {zero: 4}"), field: "parallelism.zero", contains: "at most 3")
        expectError(manifest(extra: "parallelism: {zero: 2, zero1: false}"), field: "parallelism.zero1", contains: "contradicts zero: 2")
        // A job resolved before stages existed still reads.
        let old = try JSONDecoder().decode(JobManifest.ParallelismSpec.self, from: Data(#"{"data": 2, "tensor": 1, "zero1": true}"#.utf8))
        XCTAssertEqual(old.zero, 1)
    }

    func testMissingField() {
        expectError(manifest(steps: ""), field: "steps", contains: "required field is missing")
    }

    func testWrongType() {
        expectError(manifest(steps: "steps: lots"), field: "steps", contains: "expected an integer, found \"lots\"")
        expectError(manifest(extra: "seed: [1, 2]"), field: "seed", contains: "expected an integer, found a list")
    }

    func testUnknownPreset() {
        expectError(manifest(model: "  preset: llama3-8b"), field: "model.preset", contains: "unknown preset \"llama3-8b\"; expected one of: llama2-13b, llama2-70b, llama2-7b")
    }

    func testHeadsNotDivisibleByKVHeads() {
        expectError(manifest(model: "  preset: shakespeare-char\n  kv_heads: 3"), field: "model.kv_heads",
                    contains: "must divide heads (4), got 3")
    }

    func testCorpusThatDoesNotExist() {
        expectError(manifest(corpusLine: "corpus: /no/such/corpus.txt"), field: "data.corpus",
                    contains: "no such file or directory: /no/such/corpus.txt")
    }

    func testUnknownFieldIsNotIgnored() {
        expectError(manifest(extra: "stepz: 5"), field: "stepz", contains: "unknown field")
    }

    func testBatchMustSplitIntoMicroBatches() {
        let yaml = manifest().replacingOccurrences(of: "sequences: 4", with: "sequences: 4\n  micro_batch: 3")
        expectError(yaml, field: "batch.micro_batch", contains: "must divide the global batch of 4 sequences")
    }

    func testSequenceLongerThanTheModel() {
        let yaml = manifest().replacingOccurrences(of: "seq_len: 16", with: "seq_len: 128")
        expectError(yaml, field: "data.seq_len", contains: "model.max_seq_len = 64")
    }

    func testShippedJobsAreValid() throws {
        for job in ["jobs/shakespeare-char.yaml", "jobs/demo.yaml"] {
            XCTAssertNoThrow(try JobManifest.load(path: job, overrides: .init(corpus: corpus)), job)
        }
        // The paper's runs: 2T tokens in 4M-token batches.
        for size in ["7b", "13b", "70b"] {
            let m = try JobManifest.load(path: "jobs/llama2-\(size).yaml", overrides: .init(planOnly: true))
            XCTAssertEqual(m.batch.sequences * m.data.seqLen, 4_194_304)
            XCTAssertEqual(m.steps, 476_838)
            XCTAssertEqual(m.schedule.warmupSteps, 2000)
            XCTAssertEqual(m.schedule.peak, size == "70b" ? 1.5e-4 : 3e-4)
        }
    }
}

extension ManifestTests {
    func testAModelThatCannotFitIsRefusedBeforeAllocating() throws {
        let yaml = manifest(model: "  preset: llama2-70b").replacingOccurrences(of: "tokenizer: char", with: "tokenizer: byte")
        let m = try JobManifest.parse(yaml: yaml, file: "jobs/t.yaml")
        XCTAssertThrowsError(try Trainer(manifest: m)) { error in
            guard let e = error as? ManifestError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.field, "model")
            XCTAssertTrue(e.message.contains("GiB"), e.message)
        }
    }

    func testActivationCountMatchesTheAllocation() {
        // The estimate the memory check uses is the real allocation's size.
        var c = LlamaConfig.presets["tiny-gqa"]!
        c.vocabSize = 7
        let acts = Activations(config: c, batch: 3, seqLen: 5)
        XCTAssertEqual(Activations.floatCount(config: c, batch: 3, seqLen: 5), acts.allocatedFloats)
        // And for a tensor rank's piece, with and without sequence parallelism, in every mode.
        c.vocabSize = 8
        let shard = try! TensorShard.make(c, rank: 1, size: 2)
        for sp in [false, true] {
            for mode in ActivationCheckpoint.allCases {
                let a = Activations(config: c, shard: shard, batch: 2, seqLen: 6, checkpoint: mode, sequenceParallel: sp)
                XCTAssertEqual(Activations.floatCount(config: c, shard: shard, batch: 2, seqLen: 6, checkpoint: mode, sequenceParallel: sp),
                               a.allocatedFloats, "sequence parallel \(sp), \(mode)")
                XCTAssertEqual(a.localRows, sp ? 6 : 12)
            }
        }
    }

    func testPrecision() throws {
        XCTAssertEqual(try JobManifest.parse(yaml: manifest(), file: "jobs/t.yaml").precision, .fp32)
        XCTAssertEqual(try JobManifest.parse(yaml: manifest(extra: "precision: bf16"), file: "jobs/t.yaml").precision, .bf16)
        expectError(manifest(extra: "precision: fp16"), field: "precision", contains: "expected fp32 or bf16")
    }

    /// A PPO job lays out like any training job: tensor groups, ZeRO-3,
    /// sequence parallelism, bf16 and recomputation are accepted.
    func testPPOTakesEveryParallelism() throws {
        let yaml = PPOManifests.paperScale(model: "llama2-7b", parallelism: "{data: 8, tensor: 8, zero: 3, sequence_parallel: true}",
                                           more: "precision: bf16\nactivation_checkpoint: selective")
        let m = try JobManifest.parse(yaml: yaml, file: "jobs/t.yaml", overrides: .init(planOnly: true))
        XCTAssertEqual(m.parallelism.world, 64)
        XCTAssertEqual(m.parallelism.zero, 3)
        XCTAssertTrue(m.parallelism.sequenceParallel)
        XCTAssertEqual(m.precision, .bf16)
        XCTAssertEqual(m.activationCheckpoint, .selective)
        XCTAssertEqual(m.batch.microBatch, 8, "a mini-batch's share of each data rank")
        // Still refused: a mini-batch that does not divide among the data ranks.
        XCTAssertThrowsError(try JobManifest.parse(yaml: yaml.replacingOccurrences(of: "data: 8,", with: "data: 3,"), file: "jobs/t.yaml",
                                                   overrides: .init(planOnly: true))) { e in
            XCTAssertEqual((e as? ManifestError)?.field, "ppo.mini_batch", "\(e)")
        }
    }

    func testSequenceParallelNeedsRowsThatDivide() throws {
        let yaml = manifest(extra: "parallelism: {tensor: 2, sequence_parallel: true}")
        XCTAssertTrue(try JobManifest.parse(yaml: yaml, file: "jobs/t.yaml").parallelism.sequenceParallel)
        expectError(manifest(extra: "parallelism: {sequence_parallel: yes please}"), field: "parallelism.sequence_parallel", contains: "expected")
        // 4 sequences of 16 in one micro-batch: 64 rows do not split among 3 tensor ranks.
        var m = try JobManifest.parse(yaml: yaml, file: "jobs/t.yaml")
        m.parallelism.tensor = 3
        var model = m.model.config
        model.vocabSize = 9
        model.heads = 3; model.kvHeads = 3; model.dim = 12; model.ffnDim = 12
        XCTAssertThrowsError(try Planner.plan(manifest: m, model: model, host: "h", cores: 2)) { e in
            XCTAssertEqual((e as? ManifestError)?.field, "parallelism.sequence_parallel", "\(e)")
        }
    }
}
