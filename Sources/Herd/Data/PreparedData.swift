import Foundation

/// What a job's `data.shards` (or a `data.mix` entry) names: a directory
/// `herd data prepare` wrote (a Megatron indexed dataset, OUT/text_document),
/// the prefix of an indexed dataset written by Megatron's own tools, or a
/// directory of Herd's earlier token shards (train/ and validation/).
public enum PreparedData {
    public enum Location: Equatable {
        case shards(String)
        case indexed(prefix: String)
    }

    public static func locate(_ path: String) -> Location? {
        let fm = FileManager.default
        if fm.fileExists(atPath: (path as NSString).appendingPathComponent("train/index.json")) { return .shards(path) }
        let inDir = (path as NSString).appendingPathComponent(PreparationSettings.datasetName)
        if fm.fileExists(atPath: IndexedDatasetFormat.idxPath(inDir)) { return .indexed(prefix: inDir) }
        let prefix = IndexedDatasetFormat.prefix(of: path)
        if fm.fileExists(atPath: IndexedDatasetFormat.idxPath(prefix)) { return .indexed(prefix: prefix) }
        return nil
    }

    /// What `locate` looks for, for errors.
    public static func expected(_ path: String) -> String {
        "a directory from herd data prepare (\((path as NSString).appendingPathComponent(PreparationSettings.datasetName)).idx), the prefix of a Megatron indexed dataset (\(path).idx), or token shards (\(path)/train/index.json)"
    }

    /// The tokenizer `named` (a file, or byte), or by default the one the
    /// preparation left beside the data: tokenizer.model or tokenizer.json.
    public static func tokenizer(for path: String, named: String) throws -> any Tokenizer {
        try tokenizerWithFile(for: path, named: named).tokenizer
    }

    /// The tokenizer and the file it was read from (none for byte), so that
    /// the datasets of a mixture can be checked to share one.
    public static func tokenizerWithFile(for path: String, named: String) throws -> (tokenizer: any Tokenizer, file: String?) {
        if named == "byte" { return (ByteTokenizer(), nil) }
        if named != "from shards" { return (try TokenizerFile.load(path: named), named) }
        let dir: String
        switch locate(path) {
        case .indexed(let prefix)?: dir = (prefix as NSString).deletingLastPathComponent
        default: dir = path
        }
        let model = (dir as NSString).appendingPathComponent("tokenizer.model")
        if FileManager.default.fileExists(atPath: model) { return (try SentencePieceTokenizer(path: model), model) }
        let json = (dir as NSString).appendingPathComponent("tokenizer.json")
        if let data = FileManager.default.contents(atPath: json) { return (try TokenizerFile.load(json: data, path: json), json) }
        throw PreparationError("no tokenizer.model or tokenizer.json in \(dir) (run herd data prepare, or name the tokenizer in data.tokenizer)")
    }

    /// The training source at `path`.
    public static func source(_ path: String, seqLen: Int, seed: UInt64, validationFraction: Double) throws -> any TrainingSource {
        switch locate(path) {
        case .shards(let dir)?: return try ShardDataset(dir: dir, seqLen: seqLen, seed: seed)
        case .indexed(let prefix)?: return try IndexedTokenSource(prefix: prefix, seqLen: seqLen, seed: seed, validationFraction: validationFraction)
        case nil: throw PreparationError("\(path): expected \(expected(path))")
        }
    }
}
