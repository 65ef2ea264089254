import Foundation

/// The tokenizer that belongs with a model: a SentencePiece `tokenizer.model`
/// (Llama 2's, beside a Hugging Face model or an imported run), or a run
/// directory's `tokenizer.json` (char- or byte-level, written by `herd run`).
public enum TokenizerFile {
    /// Looks in `dir` and, for a checkpoint directory, in its run directory.
    public static func find(near path: String) throws -> (any Tokenizer)? {
        let run = ((path as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        for dir in [path, run] {
            let spm = (dir as NSString).appendingPathComponent("tokenizer.model")
            if FileManager.default.fileExists(atPath: spm) { return try SentencePieceTokenizer(path: spm) }
            let json = (dir as NSString).appendingPathComponent("tokenizer.json")
            if let data = FileManager.default.contents(atPath: json) { return try load(json: data, path: json) }
        }
        return nil
    }

    /// A fine-tuning job's tokenizer: `byte`, a file, or (by default, and
    /// always for `char`, whose vocabulary belongs to its model) the one
    /// beside the weights the job starts from.
    public static func forFineTuning(named name: String, initFrom: String) throws -> any Tokenizer {
        switch name {
        case "byte": return ByteTokenizer()
        case "from init", "char":
            guard let t = try find(near: initFrom) else {
                throw RecordError(file: initFrom, line: 0, message: "no tokenizer.model or tokenizer.json beside the init weights; name one in data.tokenizer")
            }
            return t
        default: return try load(path: name)
        }
    }

    /// A tokenizer file named directly: a SentencePiece model, or a tokenizer.json.
    public static func load(path: String) throws -> any Tokenizer {
        if path.hasSuffix(".json") {
            guard let data = FileManager.default.contents(atPath: path) else { throw RecordError(file: path, line: 0, message: "cannot read") }
            return try load(json: data, path: path)
        }
        return try SentencePieceTokenizer(path: path)
    }

    public static func load(json data: Data, path: String) throws -> any Tokenizer {
        guard let j = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let kind = j["kind"] as? String else {
            throw RecordError(file: path, line: 0, message: "expected a JSON object with a kind")
        }
        switch kind {
        case "byte": return ByteTokenizer()
        case "char": return try JSONDecoder().decode(CharTokenizer.self, from: data)
        default: throw RecordError(file: path, line: 0, message: "unknown tokenizer kind \(kind)")
        }
    }
}
