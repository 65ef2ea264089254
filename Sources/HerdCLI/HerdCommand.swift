import ArgumentParser
import Foundation
import Herd

struct HerdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herd",
        abstract: "Train Llama 2 models the way the Llama 2 paper did.",
        subcommands: [Run.self, Validate.self, Presets.self, Bench.self, Version.self])
}

/// Prints a manifest error the way a user should see it and exits non-zero.
func fail(_ error: Error) -> Never {
    FileHandle.standardError.write("herd: error: \(error)\n".data(using: .utf8)!)
    Foundation.exit(2)
}

struct ManifestOptions: ParsableArguments {
    @Argument(help: "The job manifest (jobs/*.yaml).")
    var job: String

    @Option(help: "Read the corpus from this path instead of the manifest's data.corpus.")
    var corpus: String?

    @Option(help: "Override the manifest's steps.")
    var steps: Int?

    @Option(help: "Write the run here instead of the manifest's output directory.")
    var output: String?

    func load() -> JobManifest {
        do {
            return try JobManifest.load(path: job, overrides: .init(corpus: corpus, steps: steps, output: output))
        } catch { fail(error) }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a job in the foreground.")
    @OptionGroup var options: ManifestOptions

    @Option(help: "After training, print this many sampled tokens (temperature 0.8).")
    var sample: Int = 0

    func run() throws {
        let manifest = options.load()
        let trainer: Pretrainer
        do { trainer = try Pretrainer(manifest: manifest) } catch { fail(error) }
        let summary = try trainer.run { line in print(line); fflush(stdout) }
        print(String(format: "done: %d steps, train loss %.4f, held-out loss %.4f, %.0f tokens/s, %.1f s; run directory %@",
                     summary.steps, summary.finalTrainLoss, summary.finalValidationLoss,
                     summary.tokensPerSecond, summary.seconds, manifest.output))
        if sample > 0 {
            let acts = Activations(config: trainer.model.config, batch: 1, seqLen: manifest.data.seqLen)
            let prompt = (try? trainer.tokenizer.encode("\n")) ?? []
            let ids = trainer.model.generate(prompt: prompt, count: sample, temperature: 0.8,
                                             seed: manifest.seed, acts: acts)
            print("sample:\n" + trainer.tokenizer.decode(ids))
        }
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a manifest without training.")
    @OptionGroup var options: ManifestOptions

    func run() throws {
        let m = options.load()
        print("\(m.file): ok — \(m.kind.rawValue) job \"\(m.name)\", \(m.steps) steps of \(m.batch.sequences)×\(m.data.seqLen) tokens")
    }
}

struct Presets: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the model presets and their parameter counts.")

    func run() throws {
        for (name, c) in LlamaConfig.presets.sorted(by: { $0.key < $1.key }) {
            let vocab = c.vocabSize == 0 ? "tokenizer's" : String(c.vocabSize)
            let params = c.vocabSize == 0 ? "depends on vocab" : String(c.parameterCount)
            print("\(name): dim \(c.dim), layers \(c.layers), heads \(c.heads), kv heads \(c.kvHeads), ffn \(c.ffnDim), vocab \(vocab), context \(c.maxSeqLen), parameters \(params)")
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure sgemm and training throughput on this machine.")

    @Option(help: "Timed training steps per model.")
    var steps: Int = 20

    @Option(help: "OpenBLAS threads (default: all cores).")
    var threads: Int?

    @Option(help: "Only these models (shakespeare-char, small-512); repeatable.")
    var model: [String] = []

    func run() throws {
        let threads = self.threads ?? ProcessInfo.processInfo.activeProcessorCount
        Matmul.threads = threads
        print("OpenBLAS kernels: \(Matmul.coreName), threads: \(Matmul.threads)")
        let peak = Throughput.sgemmGFLOPs()
        print(String(format: "sgemm 1024³: %.1f GFLOP/s", peak))
        let cases: [(String, String, Int)] = [("shakespeare-char", "shakespeare-char", 12), ("small-512", "small-512", 8)]
        for (label, preset, batch) in cases where model.isEmpty || model.contains(label) {
            var c = LlamaConfig.presets[preset]!
            c.vocabSize = 65
            let r = try Throughput.training(config: c, batch: batch, seqLen: c.maxSeqLen, threads: threads, steps: steps)
            print(String(format: "%@ (%d params, batch %d × %d): %.0f tokens/s, %.1f GFLOP/s = %.2f of sgemm, %.1f ms/step",
                         label, c.parameterCount, batch, c.maxSeqLen, r.tokensPerSecond, r.gflops, r.gflops / peak, r.secondsPerStep * 1000))
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The libraries herd runs on.")

    func run() throws {
        print(Libraries.openBLAS)
        print("OpenBLAS kernels: \(Matmul.coreName)")
        print(Libraries.mpi)
        print(Libraries.zstd)
    }
}
