import Foundation

/// A tokenized corpus on disk for real scale: binary shards of little-endian
/// token ids behind a 32-byte header, and an `index.json` naming each shard
/// with its token count and checksum. `herd data prepare` writes them; the
/// trainer reads windows on demand (pread), so a corpus of any size is never
/// held in memory.
///
/// Shard header: "HERDTOK1", UInt32 version (1), UInt32 bytes per token
/// (2 when the vocabulary fits in 16 bits, else 4), UInt64 token count,
/// UInt64 reserved.
public enum TokenShards {
    static let magic = Array("HERDTOK1".utf8)
    static let headerBytes = 32

    public struct Index: Codable, Sendable, Equatable {
        public var version = 1
        public var tokenizer: String
        public var vocabSize: Int
        public var bytesPerToken: Int
        public var shards: [Shard]
        public struct Shard: Codable, Sendable, Equatable {
            public var file: String
            public var tokens: Int
            public var checksum: String
        }
        public var tokenCount: Int { shards.reduce(0) { $0 + $1.tokens } }

        public static func read(dir: String) throws -> Index {
            let path = (dir as NSString).appendingPathComponent("index.json")
            guard let data = FileManager.default.contents(atPath: path) else { throw ShardError.file(path, "missing") }
            do { return try JSONDecoder().decode(Index.self, from: data) } catch {
                throw ShardError.file(path, "does not parse: \(error)")
            }
        }
    }

    /// Streams tokens into shards of `shardTokens` each; writes the index
    /// when `finish` is called (every shard is on disk by then).
    public final class Writer {
        let dir: String
        let shardTokens: Int
        var index: Index
        var buffer: [TokenID] = []

        public init(dir: String, tokenizer: String, vocabSize: Int, shardTokens: Int) throws {
            self.dir = dir
            self.shardTokens = max(shardTokens, 1)
            index = Index(tokenizer: tokenizer, vocabSize: vocabSize, bytesPerToken: vocabSize <= 65536 ? 2 : 4, shards: [])
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }

        public func append(_ tokens: [TokenID]) throws {
            buffer += tokens
            var start = 0
            while buffer.count - start >= shardTokens {   // whole shards, without shifting the buffer each time
                try flush(Array(buffer[start..<(start + shardTokens)]))
                start += shardTokens
            }
            buffer.removeFirst(start)
        }

        func flush(_ tokens: [TokenID]) throws {
            guard !tokens.isEmpty else { return }
            let name = String(format: "shard-%06d.bin", index.shards.count)
            var data = Data(magic)
            func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
            put(UInt32(1)); put(UInt32(index.bytesPerToken)); put(UInt64(tokens.count)); put(UInt64(0))
            if index.bytesPerToken == 2 {
                tokens.map { UInt16(truncatingIfNeeded: $0).littleEndian }.withUnsafeBytes { data.append(contentsOf: $0) }
            } else {
                tokens.map { UInt32(truncatingIfNeeded: $0).littleEndian }.withUnsafeBytes { data.append(contentsOf: $0) }
            }
            var sum = Checksum64()
            data.withUnsafeBytes { sum.update($0) }
            let path = (dir as NSString).appendingPathComponent(name)
            try durableWrite(data, to: path + ".tmp")
            guard rename(path + ".tmp", path) == 0 else { throw ShardError.file(path, "rename failed") }
            index.shards.append(.init(file: name, tokens: tokens.count, checksum: sum.hex))
        }

        @discardableResult
        public func finish() throws -> Index {
            try flush(buffer)
            buffer.removeAll()
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            let path = (dir as NSString).appendingPathComponent("index.json")
            try durableWrite(try enc.encode(index), to: path + ".tmp")
            guard rename(path + ".tmp", path) == 0 else { throw ShardError.file(path, "rename failed") }
            try fsyncDirectory(dir)
            return index
        }
    }

    /// Reads windows of a shard set; checks each shard's header and size
    /// against the index when first opened.
    public final class Reader: @unchecked Sendable {
        public let dir: String
        public let index: Index
        private var fds: [Int: Int32] = [:]
        private let lock = NSLock()

        public init(dir: String) throws {
            self.dir = dir
            index = try Index.read(dir: dir)
        }

        deinit { for fd in fds.values { close(fd) } }

        func open(_ shard: Int) throws -> Int32 {
            guard shard >= 0 && shard < index.shards.count else {
                throw ShardError.file((dir as NSString).appendingPathComponent("index.json"), "no shard \(shard); the index lists \(index.shards.count)")
            }
            lock.lock(); defer { lock.unlock() }
            if let fd = fds[shard] { return fd }
            let s = index.shards[shard]
            let path = (dir as NSString).appendingPathComponent(s.file)
            let fd = Foundation.open(path, O_RDONLY)
            guard fd >= 0 else { throw ShardError.file(path, "missing") }
            var header = [UInt8](repeating: 0, count: headerBytes)
            guard pread(fd, &header, headerBytes, 0) == headerBytes, Array(header[0..<8]) == magic else {
                close(fd); throw ShardError.file(path, "not a Herd token shard (bad header)")
            }
            let bpt = Int(header[12..<16].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self).littleEndian })
            let count = Int(header[16..<24].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian })
            var st = stat()
            fstat(fd, &st)
            guard bpt == index.bytesPerToken, count == s.tokens, Int(st.st_size) == headerBytes + count * bpt else {
                close(fd)
                throw ShardError.file(path, "header says \(count) tokens of \(bpt) bytes in \(st.st_size) bytes; the index says \(s.tokens) of \(index.bytesPerToken)")
            }
            fds[shard] = fd
            return fd
        }

        /// tokens[0..<count] from `offset` of `shard`.
        public func read(shard: Int, offset: Int, count: Int, into out: UnsafeMutablePointer<TokenID>) throws {
            let fd = try open(shard)
            let bpt = index.bytesPerToken, s = index.shards[shard]
            guard offset >= 0, count >= 0, offset <= s.tokens - count else {
                throw ShardError.file((dir as NSString).appendingPathComponent(s.file), "window [\(offset), \(offset + count)) is outside its \(s.tokens) tokens")
            }
            var raw = [UInt8](repeating: 0, count: count * bpt)
            guard pread(fd, &raw, raw.count, off_t(headerBytes + offset * bpt)) == raw.count else {
                throw ShardError.file((dir as NSString).appendingPathComponent(s.file), "short read")
            }
            raw.withUnsafeBytes { b in
                for i in 0..<count {
                    out[i] = bpt == 2 ? TokenID(b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian)
                                      : TokenID(bitPattern: b.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)
                }
            }
        }

        /// Every shard's checksum against the index.
        public func verify() throws {
            for (i, s) in index.shards.enumerated() {
                _ = try open(i)
                let path = (dir as NSString).appendingPathComponent(s.file)
                guard let sum = Checksum64.ofFile(path)?.hex else { throw ShardError.file(path, "cannot be read") }
                guard sum == s.checksum else { throw ShardError.file(path, "checksum \(sum), the index records \(s.checksum)") }
            }
        }
    }
}

public enum ShardError: Error, Equatable, CustomStringConvertible {
    case file(String, String)
    public var description: String { switch self { case let .file(p, why): return "\(p): \(why)" } }
}
