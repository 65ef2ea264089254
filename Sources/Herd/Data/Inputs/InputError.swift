import Foundation

/// Why the input side of `herd data prepare` cannot go on: a spec that names
/// no file, a file that cannot be read or decompressed, or a line that is not
/// a document. Every description names the file (or the spec) and what was
/// expected, because on a multi-terabyte corpus "invalid JSON" alone is
/// useless.
public enum InputError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A glob pattern that matched no file.
    case noMatch(spec: String)
    /// A spec that is neither an existing path nor a pattern.
    case notFound(spec: String)
    /// A directory (given as a spec) in which the walk found no file.
    case emptyDirectory(spec: String)
    /// All the specs together named no file.
    case noInputFiles(specs: [String])
    /// A fifo, socket or device: not a corpus file (reading a fifo would also
    /// defeat byte ranges and the sizes planned from `InputFile.bytes`).
    case notRegularFile(path: String)
    /// open(2), stat(2), read(2) or a directory walk failed.
    case cannotRead(path: String, reason: String)
    /// Compressed data that the decompressor refuses; `offset` is the
    /// compressed byte offset at which it gave up (roughly where the damage is).
    case corrupt(file: String, offset: Int, reason: String)
    /// The compressed stream ends inside a gzip member or a zstd frame.
    case truncated(file: String, offset: Int)
    /// A byte of a plain-text file that is not part of valid UTF-8; `offset`
    /// counts bytes of the (decompressed) text from its start.
    case invalidUTF8(file: String, offset: Int)
    /// A JSON line that is not a document; `line` counts from 1.
    case badLine(file: String, line: Int, reason: String)
    /// A bad JSON line found by a reader that started inside the file (a byte
    /// range with lowerBound > 0), which does not know how many lines precede
    /// it: it names the byte offset at which the line starts instead.
    case badLineAt(file: String, offset: Int, reason: String)
    /// A reading option that does not apply to this file (a byte range on a
    /// compressed or plain-text file, a start offset on a compressed stream).
    case unsupported(file: String, reason: String)

    public var description: String {
        switch self {
        case .noMatch(let spec):
            return "input \(spec): the pattern matches no file"
        case .notFound(let spec):
            return "input \(spec): no such file or directory"
        case .emptyDirectory(let spec):
            return "input \(spec): the directory holds no input files (hidden files and symlinked directories are skipped)"
        case .noInputFiles(let specs):
            return "inputs \(specs.joined(separator: " ")): no input files"
        case .notRegularFile(let path):
            return "\(path): not a regular file (expected a text or JSON-lines file, optionally .gz or .zst)"
        case .cannotRead(let path, let reason):
            return "\(path): cannot read: \(reason)"
        case .corrupt(let file, let offset, let reason):
            return "\(file): corrupt compressed data near compressed byte \(offset): \(reason)"
        case .truncated(let file, let offset):
            return "\(file): compressed data truncated: the file ends at compressed byte \(offset) inside a gzip member or zstd frame"
        case .invalidUTF8(let file, let offset):
            return "\(file): invalid UTF-8 at byte \(offset) of the text (expected a UTF-8 text file)"
        case .badLine(let file, let line, let reason):
            return "\(file):\(line): \(reason)"
        case .badLineAt(let file, let offset, let reason):
            return "\(file):@\(offset): line starting at byte \(offset): \(reason)"
        case .unsupported(let file, let reason):
            return "\(file): \(reason)"
        }
    }
}
