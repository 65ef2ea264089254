import Foundation

/// Writing JSON lines the one way Herd writes them: keys sorted, slashes
/// unescaped, one record a line.
extension JSONLines {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// One record and its newline.
    public static func line<T: Encodable>(_ item: T) throws -> Data { try encoder.encode(item) + Data([0x0A]) }

    /// Records, a line each.
    public static func data<T: Encodable>(_ items: [T]) throws -> Data {
        var d = Data()
        for i in items { d += try line(i) }
        return d
    }

    /// Records written to a new file that replaces `path` whole (renamed into place).
    public static func write<T: Encodable>(_ items: [T], to path: String) throws {
        try data(items).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// A file records are appended to, each append on disk (fsync) before it
/// returns — so what a step has written survives the step's crash, and a
/// rerun can continue after it (the preference pool, a bag, ratings).
public final class AppendOnlyFile {
    public let path: String
    let fd: Int32

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RecordError(file: path, line: 0, message: "cannot append: \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    public func append(_ data: Data) throws {
        let n = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == data.count, fsync(fd) == 0 else { throw RecordError(file: path, line: 0, message: "cannot append: \(String(cString: strerror(errno)))") }
    }
}

/// A value as a readable JSON file (pretty, keys sorted), renamed into place.
public enum JSONFile {
    public static func write<T: Encodable>(_ value: T, to path: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try e.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
