import Foundation

/// `OUT/manifest.json`: what a finished preparation holds, written last —
/// its presence is what says the dataset is complete. Nothing in it depends
/// on the number of ranks or on interruptions (no times, no hosts), so a
/// rerun's manifest is byte-identical too.
public struct PreparedDataset: Codable, Sendable, Equatable {
    public var format = "megatron-indexed-dataset"
    /// The .bin/.idx prefix within the directory.
    public var dataset: String
    public var dtype: String
    public var vocabSize: Int
    public var tokenizer: String
    public var tokenizerChecksum: String?
    /// How a document is laid out in the token stream.
    public var framing: String
    public var totals: Statistics
    public var sources: [Source]
    public var binChecksum: String
    public var idxChecksum: String
    public var settings: PreparationSettings

    public struct Statistics: Codable, Sendable, Equatable {
        public var documents = 0
        public var tokens = 0
        /// UTF-8 bytes of the documents kept.
        public var textBytes = 0
        public var bytesPerToken = 0.0
        public var duplicatesDropped = 0
        public var emptyDocuments = 0
        public var badLines = 0
        public var inputBytes = 0
    }

    public struct Source: Codable, Sendable, Equatable {
        public var path: String
        public var statistics = Statistics()
        public var firstBadLines: [String] = []
    }

    public static func read(dir: String) throws -> PreparedDataset {
        let path = (dir as NSString).appendingPathComponent("manifest.json")
        guard let data = FileManager.default.contents(atPath: path) else { throw PreparationError("\(path): missing") }
        do { return try JSONDecoder().decode(PreparedDataset.self, from: data) } catch {
            throw PreparationError("\(path): not a herd data prepare manifest: \(error)")
        }
    }
}
