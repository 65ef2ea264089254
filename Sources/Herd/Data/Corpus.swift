import Foundation

/// A text corpus read from one file, or from every text file of a directory
/// (sorted by name; symbolic links, `*.dat` index files and files that are
/// not UTF-8 are skipped — which is what a fortune directory needs).
public struct Corpus: Sendable {
    public let text: String
    public let files: [String]

    public enum LoadError: Error, CustomStringConvertible {
        case missing(String)
        case empty(String)
        case notUTF8(String)
        public var description: String {
            switch self {
            case let .missing(p): return "no such file or directory: \(p)"
            case let .empty(p): return "no text found in \(p)"
            case let .notUTF8(p): return "\(p) is not UTF-8 text"
            }
        }
    }

    public init(path: String) throws(LoadError) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw .missing(path) }
        if !isDir.boolValue {
            guard let data = fm.contents(atPath: path), let s = String(data: data, encoding: .utf8) else {
                throw .notUTF8(path)
            }
            guard !s.isEmpty else { throw .empty(path) }
            text = s
            files = [path]
            return
        }
        let names = ((try? fm.contentsOfDirectory(atPath: path)) ?? []).sorted()
        var parts: [String] = []
        var used: [String] = []
        for name in names where !name.hasPrefix(".") && !name.hasSuffix(".dat") {
            let full = (path as NSString).appendingPathComponent(name)
            guard let attrs = try? fm.attributesOfItem(atPath: full),
                  attrs[.type] as? FileAttributeType == .typeRegular,
                  let data = fm.contents(atPath: full),
                  let s = String(data: data, encoding: .utf8) else { continue }
            parts.append(s)
            used.append(full)
        }
        guard !parts.isEmpty else { throw .empty(path) }
        text = parts.joined(separator: "\n")
        files = used
    }
}
