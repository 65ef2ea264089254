import Foundation

/// Training throughput of real multi-process layouts: `herd run` of a
/// generated job under mpirun, read back from the run's `end` event (the
/// sum of step times, so process start-up is not counted).
public enum LayoutThroughput {
    public struct Layout: Sendable {
        public var data: Int, tensor: Int, threads: Int
        public init(data: Int, tensor: Int, threads: Int) { self.data = data; self.tensor = tensor; self.threads = threads }
    }

    /// Tokens/s and seconds per step of `preset` trained for `steps` steps of
    /// `sequences` × its context on byte-level `corpus`, laid out as `layout`
    /// — on this machine, or on `cluster` (under a coordinator, with `environment`).
    public static func measure(preset: String, layout: Layout, sequences: Int, steps: Int,
                               corpus: String, workDir: String, herd: String = "/proc/self/exe",
                               cluster: String? = nil, environment: [String: String]? = nil) throws -> (tokensPerSecond: Double, secondsPerStep: Double) {
        let end = try run(preset: preset, layout: layout, sequences: sequences, steps: steps, corpus: corpus, workDir: workDir,
                          herd: herd, cluster: cluster, environment: environment)
        guard let tps = end.tokensPerSecond, let secs = end.trainSeconds else { throw CocoaError(.fileReadCorruptFile) }
        return (tps, secs / Double(steps))
    }

    /// Runs such a job and returns the workers' `end` event (tokens/s, the
    /// steps' seconds, the ranks' peak resident memory).
    public static func run(preset: String, layout: Layout, sequences: Int, steps: Int,
                           corpus: String, workDir: String, herd: String = "/proc/self/exe",
                           cluster: String? = nil, environment: [String: String]? = nil,
                           checkpoint: ActivationCheckpoint = .none) throws -> RunEvent {
        let job = try writeJob(preset: preset, layout: layout, sequences: sequences, steps: steps, corpus: corpus, workDir: workDir,
                               checkpoint: checkpoint, suffix: cluster == nil ? "" : "-cluster")
        return try run(job: job, herd: herd, cluster: cluster, environment: environment)
    }

    /// Writes such a job (a preset, or any `shape` at its context) into
    /// `workDir` and returns its path; its run directory is the path without `.yaml`.
    public static func writeJob(preset: String, layout: Layout, sequences: Int, steps: Int, corpus: String, workDir: String,
                                checkpoint: ActivationCheckpoint = .none, zero: Int = 0, sequenceParallel: Bool = false,
                                precision: Precision = .fp32, shape: LlamaConfig? = nil, microBatch: Int? = nil,
                                suffix: String = "") throws -> String {
        let name = "\(shape.map { "d\($0.dim)-l\($0.layers)" } ?? preset)-d\(layout.data)-t\(layout.tensor)-c\(layout.threads)-\(checkpoint.rawValue)-z\(zero)"
            + (sequenceParallel ? "-sp" : "") + (precision == .bf16 ? "-bf16" : "") + suffix
        let job = "\(workDir)/\(name).yaml", out = "\(workDir)/\(name)"
        try? FileManager.default.removeItem(atPath: out)
        let seq = shape?.maxSeqLen ?? LlamaConfig.presets[preset]!.maxSeqLen
        let model = shape.map { "{dim: \($0.dim), layers: \($0.layers), heads: \($0.heads), kv_heads: \($0.kvHeads), ffn_dim: \($0.ffnDim)}" }
            ?? "{preset: \(preset)}"
        try """
        kind: pretrain
        model: \(model)
        data: {corpus: \(corpus), tokenizer: byte, seq_len: \(seq)}
        batch: {sequences: \(sequences)\(microBatch.map { ", micro_batch: \($0)" } ?? "")}
        optimizer: {lr: 1e-4}
        schedule: {warmup_steps: 1}
        steps: \(steps)
        log_interval: \(steps)
        eval: {max_sequences: 1}
        threads: \(layout.threads)
        parallelism: {data: \(layout.data), tensor: \(layout.tensor), zero: \(zero), sequence_parallel: \(sequenceParallel)}
        activation_checkpoint: \(checkpoint.rawValue)
        precision: \(precision.rawValue)
        output: \(out)
        """.write(toFile: job, atomically: true, encoding: .utf8)
        return job
    }

    /// `herd run` of a job written by `writeJob`; the workers' `end` event.
    public static func run(job: String, herd: String = "/proc/self/exe", cluster: String? = nil,
                           environment: [String: String]? = nil) throws -> RunEvent {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: herd)) ?? herd)
        p.arguments = ["run", job] + (cluster.map { ["--cluster", $0] } ?? [])
        if let environment { p.environment = environment }
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw MPILauncher.Failure(status: p.terminationStatus) }
        // The workers' `end` (a coordinator writes its own events after it).
        let run = RunDirectory(String(job.dropLast(".yaml".count)))
        guard let end = try run.readEvents().last(where: { $0.event == .end }), end.tokensPerSecond != nil, end.trainSeconds != nil else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: run.events])
        }
        return end
    }
}
