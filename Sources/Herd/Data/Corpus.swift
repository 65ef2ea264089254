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
        case failed(String, String)
        public var description: String {
            switch self {
            case let .missing(p): return "no such file or directory: \(p)"
            case let .empty(p): return "no text found in \(p)"
            case let .notUTF8(p): return "\(p) is not UTF-8 text"
            case let .failed(p, why): return "\(p): \(why)"
            }
        }
    }

    public init(path: String) throws(LoadError) {
        var parts: [String] = []
        let used = try Self.forEachText(path) { parts.append($1) }
        text = parts.joined(separator: "\n")
        files = used
    }

    /// The bytes of the texts `forEachText` would read, from the file
    /// system's sizes alone (nothing is opened).
    public static func byteCount(_ path: String) -> Int {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { return 0 }
        func size(_ p: String) -> Int { ((try? fm.attributesOfItem(atPath: p))?[.size] as? NSNumber)?.intValue ?? 0 }
        if !isDir.boolValue { return size(path) }
        return ((try? fm.contentsOfDirectory(atPath: path)) ?? []).filter { !$0.hasPrefix(".") && !$0.hasSuffix(".dat") }
            .reduce(0) { $0 + size((path as NSString).appendingPathComponent($1)) }
    }

    /// Calls `body(file, text)` for each text of the corpus in order, one file
    /// in memory at a time (what `herd data prepare` streams). Returns the files.
    @discardableResult
    public static func forEachText(_ path: String, _ body: (String, String) throws -> Void) throws(LoadError) -> [String] {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw .missing(path) }
        if !isDir.boolValue {
            guard let data = fm.contents(atPath: path), let s = String(data: data, encoding: .utf8) else { throw .notUTF8(path) }
            guard !s.isEmpty else { throw .empty(path) }
            do { try body(path, s) } catch { throw .failed(path, "\(error)") }
            return [path]
        }
        var used: [String] = []
        for name in ((try? fm.contentsOfDirectory(atPath: path)) ?? []).sorted() where !name.hasPrefix(".") && !name.hasSuffix(".dat") {
            let full = (path as NSString).appendingPathComponent(name)
            guard let attrs = try? fm.attributesOfItem(atPath: full),
                  attrs[.type] as? FileAttributeType == .typeRegular,
                  let data = fm.contents(atPath: full),
                  let s = String(data: data, encoding: .utf8) else { continue }
            do { try body(full, s) } catch { throw .failed(full, "\(error)") }
            used.append(full)
        }
        guard !used.isEmpty else { throw .empty(path) }
        return used
    }
}
