import Foundation

/// The files a run's first rank writes beside events.jsonl (the manifest
/// as submitted came with the resolved job): the resolved model shape, and the tokenizer's vocabulary (a char-level
/// vocabulary depends on the corpus, so generation needs it).
public enum RunFiles {
    public static func writeStart(dir: String, manifest: JobManifest, model: LlamaConfig, tokenizer: any Tokenizer) throws {
        let run = RunDirectory(dir)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(model).write(to: URL(fileURLWithPath: run.model), options: .atomic)
        if let char = tokenizer as? CharTokenizer {
            try enc.encode(char).write(to: URL(fileURLWithPath: run.tokenizer), options: .atomic)
        } else {
            try enc.encode(["kind": tokenizer.kind]).write(to: URL(fileURLWithPath: run.tokenizer), options: .atomic)
        }
    }
}
