import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One file of a corpus, with how to read it (decided from its name).
public struct InputFile: Sendable, Codable, Equatable {
    public enum Format: String, Codable, Sendable {
        /// The whole file is one document.
        case text
        /// One JSON object per line; its text field is a document.
        case jsonLines
    }

    public enum Compression: String, Codable, Sendable {
        case none, gzip, zstd
    }

    public var path: String
    public var format: Format
    public var compression: Compression
    /// Size on disk (compressed size for compressed files).
    public var bytes: Int

    public init(path: String, format: Format, compression: Compression, bytes: Int) {
        self.path = path
        self.format = format
        self.compression = compression
        self.bytes = bytes
    }

    /// Format and compression from the name: `.gz` → gzip, `.zst`/`.zstd` →
    /// zstd, stripped; then `.jsonl`, `.json`, `.ndjson` → JSON lines;
    /// anything else is text. Case-insensitive (`DATA.JSONL.GZ`).
    public static func kind(ofName name: String) -> (Format, Compression) {
        var base = Substring(name.lowercased())
        var compression = Compression.none
        for (suffix, c) in [(".gz", Compression.gzip), (".zst", .zstd), (".zstd", .zstd)] where base.hasSuffix(suffix) {
            base = base.dropLast(suffix.count)
            compression = c
            break
        }
        let json = [".jsonl", ".json", ".ndjson"].contains { base.hasSuffix($0) }
        return (json ? .jsonLines : .text, compression)
    }
}

/// Turns the inputs a user names (files, directories, glob patterns) into the
/// list of files to read, in a deterministic order: the order of the output
/// shards (and so of the tokens) must not depend on readdir's order.
public enum InputFiles {
    /// Each spec is a file, a directory (walked recursively; hidden files and
    /// directories and symlinked directories skipped; symlinked files kept),
    /// or a glob pattern (`*`, `?`, `[...]`; a match that is a directory is
    /// walked). Files are sorted by path (bytewise) within each spec, specs
    /// are kept in the order given, and a file named twice (also through a
    /// symlink: same device and inode) is kept at its first place.
    public static func expand(_ specs: [String]) throws(InputError) -> [InputFile] {
        var result: [InputFile] = []
        var seen = Set<FileID>()
        for spec in specs {
            var found: [(InputFile, FileID)] = []
            var st = stat()
            if stat(spec, &st) == 0 {
                try add(path: spec, st: st, into: &found)
                if found.isEmpty, isDirectory(st) { throw .emptyDirectory(spec: spec) }
            } else if spec.contains(where: { $0 == "*" || $0 == "?" || $0 == "[" }) {
                let matches = try globMatches(spec)
                if matches.isEmpty { throw .noMatch(spec: spec) }
                for path in matches {
                    var mst = stat()
                    // A match that vanished between glob and stat is a race, not a user error.
                    guard stat(path, &mst) == 0 else { continue }
                    try add(path: path, st: mst, into: &found)
                }
                if found.isEmpty { throw .noMatch(spec: spec) }
            } else {
                // A dangling symlink lands here too: stat follows links.
                throw .notFound(spec: spec)
            }
            found.sort { $0.0.path.utf8.lexicographicallyPrecedes($1.0.path.utf8) }
            for (file, id) in found where seen.insert(id).inserted {
                result.append(file)
            }
        }
        if result.isEmpty { throw .noInputFiles(specs: specs) }
        return result
    }

    /// Device and inode: the identity used to drop duplicates.
    struct FileID: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    private static func isDirectory(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFDIR }
    private static func isRegular(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFREG }

    /// Adds `path` (already stat'ed, links followed): a regular file, or every
    /// file under a directory.
    private static func add(path: String, st: stat,
                            into found: inout [(InputFile, FileID)]) throws(InputError) {
        if isDirectory(st) {
            try walk(directory: path, into: &found)
        } else if isRegular(st) {
            let (format, compression) = InputFile.kind(ofName: path)
            found.append((InputFile(path: path, format: format, compression: compression, bytes: Int(st.st_size)),
                          FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))))
        } else {
            throw .notRegularFile(path: path)
        }
    }

    private static func walk(directory: String, into found: inout [(InputFile, FileID)]) throws(InputError) {
        guard let dir = opendir(directory) else {
            throw .cannotRead(path: directory, reason: String(cString: strerror(errno)))
        }
        defer { closedir(dir) }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            // Hidden entries (".", "..", ".git", editors' ".swp" files) are not corpus.
            if name.hasPrefix(".") { continue }
            let path = prefix + name
            var lst = stat()
            guard lstat(path, &lst) == 0 else {
                throw .cannotRead(path: path, reason: String(cString: strerror(errno)))
            }
            if (lst.st_mode & S_IFMT) == S_IFLNK {
                var st = stat()
                guard stat(path, &st) == 0 else {
                    throw .cannotRead(path: path, reason: "a symbolic link to a missing file")
                }
                // Symlinked directories are skipped: they can form cycles and
                // usually point at data that is listed elsewhere.
                if isDirectory(st) { continue }
                try add(path: path, st: st, into: &found)
            } else {
                try add(path: path, st: lst, into: &found)
            }
        }
    }

    private static func globMatches(_ pattern: String) throws(InputError) -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        let rc = glob(pattern, 0, nil, &g)
        if rc == GLOB_NOMATCH { return [] }
        guard rc == 0 else {
            throw .cannotRead(path: pattern, reason: rc == GLOB_NOSPACE ? "out of memory expanding the pattern"
                                                                         : "a directory could not be read while expanding the pattern")
        }
        var paths: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { paths.append(String(cString: p)) }
        }
        return paths
    }
}
