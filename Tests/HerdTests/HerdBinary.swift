import XCTest
import Foundation
import Herd

/// The release `herd` binary that `make test` builds, run as a user runs it.
enum HerdBinary {
    static let path = ".build/release/herd"

    static func run(_ args: [String], environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
        try requireBinary()
        return try Spawn.capture(path, args, environment: environment)
    }

    /// Skips where the binary is not built; fails under `make test`, which builds it.
    static func requireBinary(file: StaticString = #file, line: UInt = #line) throws {
        try require(FileManager.default.isExecutableFile(atPath: path), "the herd binary \(path)", "make test builds it", file: file, line: line)
    }

    /// `herd ARGS` as a fixture makes something: an exit other than 0 throws,
    /// naming the command and its stderr (its end, where the reason is).
    @discardableResult
    static func fixture(_ args: [String], environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
        let r = try run(args, environment: environment)
        guard r.status == 0 else {
            let said = r.err.isEmpty ? r.out : r.err
            throw TestFailure("herd \(args.joined(separator: " ")) exited \(r.status): \(said.suffix(4000))")
        }
        return r
    }

    /// A briefly pretrained byte-level tiny-gqa (context 128) at OUTPUT,
    /// with a checkpoint: the policy the RLHF steps' tests sample from.
    @discardableResult
    static func pretrainTinyPolicy(dir: String, output: String, steps: Int = 10) throws -> String {
        try writeCorpus(in: dir)
        let job = dir + "/tiny-policy.yaml"
        try """
            kind: pretrain
            model: {preset: tiny-gqa, max_seq_len: 128}
            data: {corpus: \(dir)/corpus.txt, tokenizer: byte, seq_len: 64}
            batch: {sequences: 8}
            optimizer: {lr: 3e-3}
            steps: \(steps)
            threads: 2
            checkpoint: {interval: \(steps)}
            output: \(output)
            """.write(toFile: job, atomically: true, encoding: .utf8)
        try fixture(["run", job])
        return output
    }

    /// Beside the tiny policy DIR/policy: a reward model trained from it for
    /// three steps on a trivial pool (DIR/rm), and `prompts` prompts of the
    /// world's capitals family, the first tagged safety (DIR/prompts.jsonl).
    static func tinyRewardModelAndPrompts(dir: String, prompts: Int) throws {
        let line = #"{"prompt_id": "p", "dialogue": [{"role": "user", "content": "hi"}], "responses": ["yes", "no"], "chosen": 0, "degree": "better", "safe": [true, true]}"#
        try Array(repeating: line, count: 16).joined(separator: "\n").write(toFile: dir + "/pool.jsonl", atomically: true, encoding: .utf8)
        try """
            kind: reward
            init: \(dir)/policy
            data: {comparisons: \(dir)/pool.jsonl, seq_len: 32, val_fraction: 0}
            batch: {pairs: 4}
            steps: 3
            threads: 2
            output: \(dir)/rm
            """.write(toFile: dir + "/rm.yaml", atomically: true, encoding: .utf8)
        try fixture(["run", dir + "/rm.yaml"])
        let lines = (0..<prompts).map { i in #"{"id": "q\#(i)", "dialogue": [{"role": "user", "content": "Capitals: w\#(i)"}], "safety": \#(i == 0)}"# }
        try lines.joined(separator: "\n").write(toFile: dir + "/prompts.jsonl", atomically: true, encoding: .utf8)
    }

    /// A job manifest for the orchestrator's tests: tiny-gqa on bytes, data
    /// parallel over `data` ranks, a checkpoint every `interval` steps, fast
    /// heartbeats; a few seconds of training on two cores.
    static func orchestratedJob(dir: String, name: String, steps: Int = 2400, interval: Int = 200, data: Int = 2, tensor: Int = 1,
                                maxRestarts: Int = 2, hangTimeout: Double = 4, extra: String = "") throws -> (job: String, run: String) {
        let path = dir + "/\(name).yaml"
        let m = orchestratedManifest(dir: dir, name: name, steps: steps, interval: interval, data: data, tensor: tensor,
                                     maxRestarts: maxRestarts, hangTimeout: hangTimeout, extra: extra)
        try m.text.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, m.run)
    }

    /// The text of such a manifest (for a body sent to herd serve), and its run directory.
    static func orchestratedManifest(dir: String, name: String, steps: Int, interval: Int = 200, data: Int = 2, tensor: Int = 1,
                                     maxRestarts: Int = 2, hangTimeout: Double = 4, backoff: Double = 0.5, logInterval: Int = 20,
                                     extra: String = "") -> (text: String, run: String) {
        let run = dir + "/run-\(name)"
        return ("""
        kind: pretrain
        name: \(name)
        seed: 5
        model: {preset: tiny-gqa}
        data: {corpus: \(dir)/corpus.txt, tokenizer: byte, seq_len: 16}
        batch: {sequences: 64, micro_batch: 8}
        optimizer: {lr: 3e-3}
        schedule: {warmup_steps: 50}
        steps: \(steps)
        log_interval: \(logInterval)
        threads: 2
        checkpoint: {interval: \(interval), keep: 3}
        parallelism: {data: \(data), tensor: \(tensor)}
        restart: {max_restarts: \(maxRestarts), backoff_seconds: \(backoff)}
        monitor: {heartbeat_seconds: 0.25, hang_timeout_seconds: \(hangTimeout)}
        output: \(run)
        \(extra)
        """, run)
    }

    /// DIR/NAME.yaml: an RLHF pipeline of two tiny-gqa policies (DIR/policy)
    /// on the synthetic world (DIR/world), three iterations; `change` edits its text.
    static func tinyPipeline(dir: String, name: String, change: (String) -> String = { $0 }) throws -> String {
        let d = dir, herd = FileManager.default.currentDirectoryPath + "/" + HerdBinary.path
        let text = """
            name: \(name)
            seed: 3
            output: \(d)/run-\(name)
            annotator: [\(herd), rlhf, annotator]
            prompts: {annotate: \(d)/world/prompts.jsonl, sample: \(d)/world/prompts.jsonl, sample_count: 40, held_out: \(d)/world/prompts-heldout.jsonl}
            policies:
              - {name: large, init: \(d)/policy, sampler: true}
              - {name: small, init: \(d)/policy}
            reward_models:
              init: \(d)/policy
              helpfulness: {data: {seq_len: 64, val_fraction: 0.25}, batch: {pairs: 4}, steps: 3, threads: 2}
              safety: {data: {seq_len: 64, val_fraction: 0.25}, batch: {pairs: 4}, steps: 3, threads: 2}
              health: {held_out: 0, held_out_clear: 0, on_policy: 0, on_policy_clear: 0}   # models of 3 steps; the check still runs
            finetune: {data: {seq_len: 64, val_fraction: 0}, batch: {sequences: 4}, steps: 3, threads: 2, checkpoint: {interval: 50}}
            annotation: {max_new_tokens: 8}
            sampling: {max_new_tokens: 24, chunk: 1}
            evaluation: {max_new_tokens: 8}
            iterations:
              - {annotate: 12, k: 2}
              - {annotate: 12, k: 4}
              - {annotate: 12, k: 2, finetune: {steps: 400}}
            """
        let path = "\(d)/\(name).yaml"
        try change(text).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// DIR/corpus.txt: 120k characters of Shakespeare (or a stand-in when
    /// ../shared is absent), the text the multi-process tests train on.
    /// DIR/local.yaml: this machine as an mpirun cluster of two slots, for jobs under a coordinator.
    static func writeLocalCluster(in dir: String) throws {
        try """
            name: local
            launcher: mpirun
            nodes:
              - {hosts: [localhost], slots: 2, cores: 2, memory_gb: 16, peak_tflops: 0.1}
            """.write(toFile: dir + "/local.yaml", atomically: true, encoding: .utf8)
    }

    static func writeCorpus(in dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let shakespeare = "../shared/data/tinyshakespeare.txt"
        let text = FileManager.default.fileExists(atPath: shakespeare)
            ? try String(contentsOfFile: shakespeare, encoding: .utf8)
            : String(repeating: "Now is the winter of our discontent made glorious summer by this sun of York.\n", count: 800)
        try String(text.prefix(120_000)).write(toFile: dir + "/corpus.txt", atomically: true, encoding: .utf8)
    }

    static func start(_ args: [String], environment: [String: String]? = nil) throws -> (process: Process, out: Pipe, err: Pipe) {
        try requireBinary()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }
}
