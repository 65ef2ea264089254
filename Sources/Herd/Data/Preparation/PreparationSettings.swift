import Foundation

/// What `herd data prepare` was asked to do. Stored in the work directory
/// by the first run, so that a rerun continues the same preparation (and
/// refuses to mix in different settings).
public struct PreparationSettings: Codable, Sendable, Equatable {
    /// Files, directories and globs of text and JSON-lines files (.gz, .zst).
    public var inputs: [String]
    /// A SentencePiece `tokenizer.model` (Llama 2's), or `byte` or `char`.
    public var tokenizer: String
    /// The directory the dataset is written to.
    public var out: String
    /// The field of a JSON line that holds the document.
    public var textKey = "text"
    public var onBadLine: BadLinePolicy = .fail
    /// Uncompressed JSON-lines files larger than this are cut into byte
    /// ranges, each a unit of work (compressed files are one unit each).
    public var unitBytes = 256 << 20
    /// Drop documents whose text is identical to an earlier one's.
    public var deduplicate = true
    /// Token bytes after which a unit's output goes on in a new part (at a
    /// document's end): what the merge holds of a part at once — its index
    /// and hashes, ~44 bytes per document — stays bounded whatever the size
    /// of a unit (a compressed file is one unit however large).
    public var partBytes = 32 << 20

    public init(inputs: [String], tokenizer: String, out: String) {
        self.inputs = inputs
        self.tokenizer = tokenizer
        self.out = out
    }

    /// The dataset's prefix, as Megatron's preprocess_data.py names it for a
    /// JSON key and document level (`--data-path OUT/text_document`).
    public static let datasetName = "text_document"
    public var datasetPrefix: String { (out as NSString).appendingPathComponent(Self.datasetName) }
    public var manifestPath: String { (out as NSString).appendingPathComponent("manifest.json") }
    /// Where unfinished work lives until the dataset is published.
    public var workDirectory: String { (out as NSString).appendingPathComponent(".prepare") }
}

/// What went wrong, naming what to fix.
public struct PreparationError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
