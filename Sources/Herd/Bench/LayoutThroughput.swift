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
        let name = "\(preset)-d\(layout.data)-t\(layout.tensor)-c\(layout.threads)-\(checkpoint.rawValue)" + (cluster == nil ? "" : "-cluster")
        let job = "\(workDir)/\(name).yaml", out = "\(workDir)/\(name)"
        try? FileManager.default.removeItem(atPath: out)
        let seq = LlamaConfig.presets[preset]!.maxSeqLen
        try """
        kind: pretrain
        model: {preset: \(preset)}
        data: {corpus: \(corpus), tokenizer: byte, seq_len: \(seq)}
        batch: {sequences: \(sequences)}
        optimizer: {lr: 1e-4}
        schedule: {warmup_steps: 1}
        steps: \(steps)
        log_interval: \(steps)
        eval: {max_sequences: 1}
        threads: \(layout.threads)
        parallelism: {data: \(layout.data), tensor: \(layout.tensor)}
        activation_checkpoint: \(checkpoint.rawValue)
        output: \(out)
        """.write(toFile: job, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: herd)) ?? herd)
        p.arguments = ["run", job] + (cluster.map { ["--cluster", $0] } ?? [])
        if let environment { p.environment = environment }
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw MPILauncher.Failure(status: p.terminationStatus) }
        // The workers' `end` (a coordinator writes its own events after it).
        let run = RunDirectory(out)
        guard let end = try run.readEvents().last(where: { $0.event == .end }), end.tokensPerSecond != nil, end.trainSeconds != nil else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: run.events])
        }
        return end
    }
}
