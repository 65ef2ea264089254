import Foundation

/// The files a run leaves beside events.jsonl: the manifest as submitted,
/// the resolved model shape, and the tokenizer's vocabulary (a char-level
/// vocabulary depends on the corpus, so generation needs it).
public enum RunFiles {
    public static func writeStart(dir: String, manifest: JobManifest, model: LlamaConfig, tokenizer: any Tokenizer) throws {
        func path(_ name: String) -> URL { URL(fileURLWithPath: dir).appendingPathComponent(name) }
        if let text = FileManager.default.contents(atPath: manifest.file) {
            try text.write(to: path("manifest.yaml"), options: .atomic)
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(model).write(to: path("model.json"), options: .atomic)
        if let char = tokenizer as? CharTokenizer {
            try enc.encode(char).write(to: path("tokenizer.json"), options: .atomic)
        } else {
            try enc.encode(["kind": tokenizer.kind]).write(to: path("tokenizer.json"), options: .atomic)
        }
    }
}
