import Foundation

/// Checkpoint figures for `herd bench`: save and load rates and
/// compression ratios of a real model's state, and what an asynchronous
/// save costs the training steps it overlaps.
public enum CheckpointThroughput {
    public struct Figures: Sendable {
        public var rawBytes: Int
        public var compressedBytes: [String: (raw: Int, packed: Int)]
        public var saveSeconds: Double
        public var loadSeconds: Double
        public var stepSeconds: Double
        public var stepSecondsWithAsyncSave: Double
    }

    /// `preset` with byte vocabulary, batch `sequences`, trained `steps`
    /// steps without saving and then `steps` steps with an asynchronous
    /// save started at the first.
    public static func measure(preset: String, sequences: Int, steps: Int, level: Int, workDir: String) throws -> Figures {
        let corpus = workDir + "/ckpt-corpus.txt"
        var text = ""
        var rng = SplitMix64(seed: 9)
        while text.utf8.count < 200_000 { text += String(UnicodeScalar(UInt8(97 + rng.next() % 26))) + (rng.next() % 6 == 0 ? " " : "") }
        try text.write(toFile: corpus, atomically: true, encoding: .utf8)
        let seq = LlamaConfig.presets[preset]!.maxSeqLen
        let m = try JobManifest.parse(yaml: """
            kind: pretrain
            model: {preset: \(preset)}
            data: {corpus: \(corpus), tokenizer: byte, seq_len: \(seq)}
            batch: {sequences: \(sequences)}
            optimizer: {lr: 1e-4}
            steps: \(2 * steps + 1)
            checkpoint: {interval: 1000000, level: \(level), dtype: bf16}
            output: \(workDir)/ckpt-run
            """, file: "bench")
        let trainer = try Trainer(manifest: m)
        _ = try trainer.trainStep()   // moments that are not all zero
        let t0 = DispatchTime.now().uptimeNanoseconds
        let saved = try CheckpointWriter.save(step: 1, sequencesConsumed: sequences, model: trainer.model, optimizer: trainer.optimizer,
                                              context: trainer.context, job: m, settings: m.checkpoint)
        let saveSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let manifest = try CheckpointManifest.read(dir: saved.directory)
        var byComponent: [String: (raw: Int, packed: Int)] = [:]
        for t in manifest.tensors {
            for p in t.pieces {
                let key = p.component == "param" ? "weights fp32 (master)" : p.component == "weight" ? "weights bf16" : "AdamW moments fp32"
                let old = byComponent[key] ?? (0, 0)
                byComponent[key] = (old.raw + p.byteCount, old.packed + p.compressedBytes)
            }
        }
        let t1 = DispatchTime.now().uptimeNanoseconds
        _ = try CheckpointLoader.load(dir: saved.directory, model: trainer.model, optimizer: trainer.optimizer)
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9

        var plain = 0.0
        for _ in 0..<steps { plain += try trainer.trainStep().seconds }
        let async = AsyncCheckpointer(model: trainer.model, optimizer: trainer.optimizer, context: trainer.context,
                                      job: m, settings: m.checkpoint)
        let t2 = DispatchTime.now().uptimeNanoseconds
        _ = try async.start(step: 2, sequencesConsumed: 0)
        for _ in 0..<steps {
            _ = try trainer.trainStep()
            _ = try async.poll()
        }
        _ = try async.finish()
        let withSave = Double(DispatchTime.now().uptimeNanoseconds - t2) / 1e9
        return Figures(rawBytes: byComponent.values.reduce(0) { $0 + $1.raw }, compressedBytes: byComponent,
                       saveSeconds: saveSeconds, loadSeconds: loadSeconds,
                       stepSeconds: plain / Double(steps), stepSecondsWithAsyncSave: withSave / Double(steps))
    }
}
