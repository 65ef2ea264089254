import ArgumentParser
import Foundation
import Herd

/// `herd import --hf DIR --out RUN`.
struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "A Hugging Face LlamaForCausalLM directory as a Herd run with a step-0 checkpoint.")
    @Option(help: "config.json plus model.safetensors (or shards with model.safetensors.index.json).") var hf: String
    @Option(help: "The run directory to create; a job with this output continues from it.") var out: String

    func run() throws {
        do {
            let dir = try ModelFiles.importHuggingFace(dir: hf, runDirectory: out)
            print("imported \(hf) → \(dir)")
        } catch { fail(error) }
    }
}

/// `herd export --checkpoint PATH --hf OUTDIR`.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "A Herd checkpoint as a Hugging Face LlamaForCausalLM directory.")
    @Option(help: "A checkpoint directory, or a run directory (its LATEST).") var checkpoint: String
    @Option(help: "The directory to write config.json and model.safetensors into.") var hf: String
    @Option(help: "F32, BF16 or F16.") var dtype = "F32"

    func run() throws {
        guard ["F32", "BF16", "F16"].contains(dtype) else { fail(ValidationError("--dtype: expected F32, BF16 or F16, got \(dtype)")) }
        do {
            try ModelFiles.exportHuggingFace(checkpoint: checkpoint, to: hf, dtype: dtype)
            print("exported \(checkpoint) → \(hf) (\(dtype))")
        } catch { fail(error) }
    }
}

/// `herd generate --model PATH --prompt TEXT`.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a prompt with a Herd checkpoint or a Hugging Face model (KV cache).")
    @Option(help: "A Herd checkpoint or run directory, or a Hugging Face directory.") var model: String
    @Option(help: "The prompt text (needs the model's tokenizer).") var prompt: String?
    @Option(help: "The prompt as token ids, space-separated.") var promptIds: String?
    @Option(help: "How many continuations of the prompt, generated together.") var samples = 1
    @Option(help: "0 for greedy.") var temperature = 0.8
    @Option(help: "Nucleus sampling threshold.") var topP = 1.0
    @Option var seed: UInt64 = 0
    @Option var maxNewTokens = 128
    @Option(help: "Stop a sequence at this token id.") var eos: Int32?
    @Flag(help: "Print token ids instead of text.") var ids = false
    @Flag(help: "Wrap the prompt in the Llama 2 chat format ([INST] ... [/INST]); needs a SentencePiece tokenizer.") var chat = false
    @Option(help: "With --chat: a system message.") var system: String?
    @Option(help: "MPI ranks the model is split across by tensor parallelism (started with mpirun on this machine).") var tensor = 1
    @Flag(help: .hidden) var mpiWorker = false

    func run() throws {
        guard tensor >= 1 else { fail(ValidationError("--tensor: at least 1, got \(tensor)")) }
        if tensor > 1 && !mpiWorker {
            do { try MPIRanks.relaunch(tensor) } catch { fail(error) }
            return
        }
        let group = mpiWorker ? MPIRanks.world() : SingleProcessCommunicator()
        defer { if mpiWorker { MPIRuntime.finish() } }
        do {
            let llama = try ModelFiles.loadModel(model, placement: ModelPlacement(tensor: group, trains: false))
            let tokenizer = try TokenizerFile.find(near: model)
            var tokens: [TokenID]
            if let promptIds {
                tokens = promptIds.split(whereSeparator: { $0 == " " || $0 == "," }).compactMap { TokenID($0) }
            } else if let prompt {
                guard let tokenizer else { throw ValidationError("--prompt: no tokenizer.model or tokenizer.json beside \(model); use --prompt-ids") }
                if chat {
                    guard let spm = tokenizer as? SentencePieceTokenizer else { throw ValidationError("--chat needs a SentencePiece tokenizer.model") }
                    tokens = try ChatFormat.encode((system.map { [ChatMessage(.system, $0)] } ?? []) + [ChatMessage(.user, prompt)], tokenizer: spm).tokens
                } else if let spm = tokenizer as? SentencePieceTokenizer {
                    tokens = spm.encode(prompt, bos: true, eos: false)
                } else {
                    tokens = try tokenizer.encode(prompt)
                }
            } else { throw ValidationError("give --prompt or --prompt-ids") }
            guard !tokens.isEmpty else { throw ValidationError("the prompt is empty") }
            // The cores shared among the ranks.
            let cores = max(1, ProcessInfo.processInfo.activeProcessorCount / tensor)
            Matmul.threads = cores
            let generator = Generator(model: llama, batch: samples, threads: cores)
            let start = Date()
            let stop = eos ?? (tokenizer as? SentencePieceTokenizer)?.eosID
            let out = generator.generate(Array(repeating: tokens, count: samples), options: .init(
                temperature: temperature, topP: topP, seed: seed, maxNewTokens: maxNewTokens, eos: stop))
            let n = out.reduce(0) { $0 + $1.count }
            guard group.rank == 0 else { return }
            for o in out {
                print(ids || tokenizer == nil ? o.map(String.init).joined(separator: " ") : tokenizer!.decode(o))
            }
            FileHandle.standardError.write(String(format: "%d tokens in %.2f s (%.0f tokens/s)\n", n, Date().timeIntervalSince(start),
                                                  Double(n) / Date().timeIntervalSince(start)).data(using: .utf8)!)
        } catch {
            if mpiWorker { MPIRuntime.abort(rank: group.rank, reason: "\(error)") }
            fail(error)
        }
    }
}

/// `herd tokenize --tokenizer PATH`: text on stdin → ids (or ids → text with --decode).
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Token ids of the text on standard input (or text of the ids, with --decode).")
    @Option(help: "A SentencePiece tokenizer.model, or a run's tokenizer.json.") var tokenizer: String
    @Flag(help: "Read token ids (space-separated) and print the text.") var decode = false
    @Flag(help: "Add BOS (SentencePiece tokenizers).") var bos = false
    @Flag(help: "Add EOS (SentencePiece tokenizers).") var eos = false

    func run() throws {
        do {
            let t = try TokenizerFile.load(path: tokenizer)
            let input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            if decode {
                print(t.decode(input.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," }).compactMap { TokenID($0) }), terminator: "")
                return
            }
            var ids: [TokenID]
            if let spm = t as? SentencePieceTokenizer { ids = spm.encode(input, bos: bos, eos: eos) } else { ids = try t.encode(input) }
            print(ids.map(String.init).joined(separator: " "))
        } catch { fail(error) }
    }
}
