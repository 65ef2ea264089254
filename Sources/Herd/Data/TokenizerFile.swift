import Foundation

/// The tokenizer that belongs with a model: a run directory's
/// `tokenizer.json` (char- or byte-level vocabulary, written by `herd run`).
public enum TokenizerFile {
    /// Looks in `dir` and, for a checkpoint directory, in its run directory.
    public static func find(near path: String) throws -> (any Tokenizer)? {
        let run = ((path as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        for dir in [path, run] {
            let json = (dir as NSString).appendingPathComponent("tokenizer.json")
            if let data = FileManager.default.contents(atPath: json) { return try load(json: data, path: json) }
        }
        return nil
    }

    public static func load(json data: Data, path: String) throws -> any Tokenizer {
        guard let j = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let kind = j["kind"] as? String else {
            throw InteropError.file(path, "expected a JSON object with a kind")
        }
        switch kind {
        case "byte": return ByteTokenizer()
        case "char": return try JSONDecoder().decode(CharTokenizer.self, from: data)
        default: throw InteropError.file(path, "unknown tokenizer kind \(kind)")
        }
    }
}
