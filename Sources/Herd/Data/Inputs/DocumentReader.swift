import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What to do with a JSON line that is not a document.
public enum BadLinePolicy: String, Sendable, Codable {
    /// Count it (InputCounts.badLines, the first ten in firstBadLines) and go on.
    case skip
    /// Stop with InputError.badLine naming the file and the line.
    case fail
}

/// What a reader saw, summed over files with `add`.
public struct InputCounts: Sendable, Codable, Equatable {
    /// Documents delivered (non-empty).
    public var documents = 0
    /// Documents whose text is "" (or empty text files): counted, not delivered.
    public var emptyDocuments = 0
    /// JSON lines read, blank ones and bad ones included (a plain-text file counts none).
    public var lines = 0
    public var badLines = 0
    /// UTF-8 bytes of delivered text.
    public var textBytes = 0
    /// Bytes of the (decompressed) stream this reader handled: the whole
    /// stream for a file, the lines that start in the range for a byte
    /// range (so the ranges of a file add up to its size).
    public var inputBytes = 0
    /// The first bad lines' messages, "FILE:LINE: why" (at most `maxBadLineMessages`).
    public var firstBadLines: [String] = []

    public static let maxBadLineMessages = 10

    public init() {}

    public mutating func add(_ o: InputCounts) {
        documents += o.documents
        emptyDocuments += o.emptyDocuments
        lines += o.lines
        badLines += o.badLines
        textBytes += o.textBytes
        inputBytes += o.inputBytes
        firstBadLines += o.firstBadLines.prefix(max(0, Self.maxBadLineMessages - firstBadLines.count))
    }
}

/// Streams the documents of one input file as chunks of UTF-8 text, with
/// memory bounded by a few fixed buffers plus the longest JSON line.
///
/// - JSON lines: each non-blank line must be a JSON object with a string
///   field `textKey` at its top level; its unescaped value is one document.
///   Blank lines are skipped (counted in `lines`, not bad); CRLF endings and
///   a last line without a newline are accepted. A bad line is thrown or
///   counted according to `onBadLine`.
/// - Plain text: the whole file is one document. Invalid UTF-8 always throws
///   `InputError.invalidUTF8`, whatever `onBadLine` says: earlier chunks of
///   the document may already have been delivered, so it cannot be skipped
///   as a whole (chunks are validated before they are delivered, so no
///   invalid byte ever reaches the body).
/// - Chunks: at most `chunkBytes` (1 MiB) each, ending just after a "\n"
///   when there is one, else just before a " " that follows a non-space,
///   else at a UTF-8 character boundary. A JSON document that fits in 1 MiB
///   is delivered as one chunk (first and last).
/// - byteRange (uncompressed JSON lines only): reads exactly the lines that
///   start inside the range, so readers of [0, a), [a, b), [b, size) read
///   each line once for any cut points. A reader whose range starts after 0
///   does not know how many lines precede it, so it names bad lines by the
///   byte offset at which they start (InputError.badLineAt) instead of
///   counting newlines from the start of the file.
public struct DocumentReader: Sendable {
    public var file: InputFile
    public var textKey: String
    public var onBadLine: BadLinePolicy
    public var byteRange: Range<Int>?
    public var maxLineBytes: Int

    /// The largest chunk delivered.
    public static let chunkBytes = 1 << 20
    /// The size of the reads from the byte source.
    static let readBytes = 1 << 20

    public init(file: InputFile, textKey: String = "text", onBadLine: BadLinePolicy = .fail,
                byteRange: Range<Int>? = nil, maxLineBytes: Int = 1 << 28) {
        self.file = file
        self.textKey = textKey
        self.onBadLine = onBadLine
        self.byteRange = byteRange
        self.maxLineBytes = maxLineBytes
    }

    public typealias ChunkBody = (_ chunk: UnsafeBufferPointer<UInt8>, _ first: Bool, _ last: Bool) throws -> Void

    /// Calls body for each chunk of each document's text, in order. A JSON
    /// line's text value (after unescaping) is one document; a plain-text
    /// file is one document. chunk = valid UTF-8 bytes (valid only during the
    /// call); first = the document's first chunk; last = its last chunk.
    /// Empty documents are counted and not delivered. Throws InputError, or
    /// what body throws.
    public func forEachChunk(_ body: ChunkBody) throws -> InputCounts {
        if let range = byteRange {
            guard file.format == .jsonLines, file.compression == .none else {
                throw InputError.unsupported(file: file.path, reason: "byte ranges are only for uncompressed JSON-lines files")
            }
            guard range.lowerBound >= 0 else {
                throw InputError.unsupported(file: file.path, reason: "byte range \(range) starts before the file")
            }
        }
        guard maxLineBytes > 0 else {
            throw InputError.unsupported(file: file.path, reason: "maxLineBytes must be positive")
        }
        switch file.format {
        case .text: return try readText(body)
        case .jsonLines: return try readJSONLines(body)
        }
    }

    // MARK: - Chunks

    /// Where to end the next chunk of p[0..<n], n > limit: just after the
    /// last "\n" among the first `limit` bytes, else just before the last " "
    /// that follows a non-space (a word boundary the tokenizer would also
    /// cut at), else at a UTF-8 character boundary.
    static func chunkCut(_ p: UnsafePointer<UInt8>, _ n: Int, limit: Int) -> Int {
        // Backwards: text lines are short, so the last newline is near the
        // limit (memrchr is a GNU extension Swift does not see).
        var i = limit - 1
        while i >= 0 {
            if p[i] == UInt8(ascii: "\n") { return i + 1 }
            i -= 1
        }
        var j = limit   // p[limit] exists: n > limit
        while j > 0 {
            if p[j] == UInt8(ascii: " ") && p[j - 1] != UInt8(ascii: " ") { return j }
            j -= 1
        }
        var k = limit
        while k > 0 && limit - k < 3 && p[k] & 0xC0 == 0x80 { k -= 1 }
        return k > 0 ? k : limit
    }

    /// Delivers one document held whole in memory, in chunks.
    static func deliver(_ text: UnsafeBufferPointer<UInt8>, _ body: ChunkBody) throws {
        guard var p = text.baseAddress else { return }
        var left = text.count
        var first = true
        while left > chunkBytes {
            let cut = chunkCut(p, left, limit: chunkBytes)
            try body(UnsafeBufferPointer(start: p, count: cut), first, false)
            first = false
            p += cut
            left -= cut
        }
        try body(UnsafeBufferPointer(start: p, count: left), first, true)
    }

    // MARK: - Plain text

    private func readText(_ body: ChunkBody) throws -> InputCounts {
        var counts = InputCounts()
        let source = try ByteSource(file: file)
        let limit = Self.chunkBytes
        // Room for a full chunk plus the byte after it (to know a chunk is
        // not the last) and a full read.
        let capacity = 2 * limit + Self.readBytes
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        var start = 0, end = 0
        var base = 0   // stream offset of buffer[0]
        var ended = false
        var first = true
        while true {
            while !ended && end - start <= limit {
                if end == capacity {
                    memmove(buffer, buffer + start, end - start)
                    base += start
                    end -= start
                    start = 0
                }
                let n = try source.read(into: UnsafeMutableRawBufferPointer(start: buffer + end, count: capacity - end))
                if n == 0 { ended = true } else { end += n }
            }
            let pending = end - start
            if pending == 0 { break }
            let last = pending <= limit   // so the stream has ended
            let cut = last ? pending : Self.chunkCut(buffer + start, pending, limit: limit)
            if let bad = UTF8Validation.firstInvalid(buffer + start, cut) {
                throw InputError.invalidUTF8(file: file.path, offset: base + start + bad)
            }
            try body(UnsafeBufferPointer(start: buffer + start, count: cut), first, last)
            first = false
            counts.textBytes += cut
            start += cut
            if last { break }
        }
        counts.inputBytes = base + end
        if first { counts.emptyDocuments += 1 } else { counts.documents += 1 }
        return counts
    }

    // MARK: - JSON lines

    private enum LineState {
        /// Reading a range that starts after 0: dropping bytes up to the
        /// first "\n" at or after lowerBound - 1.
        case seekingRangeStart
        case reading
        /// Dropping the rest of a line longer than maxLineBytes.
        case skippingLongLine
    }

    private func readJSONLines(_ body: ChunkBody) throws -> InputCounts {
        var counts = InputCounts()
        let lower = byteRange?.lowerBound ?? 0
        let upper = byteRange?.upperBound ?? Int.max
        // Start one byte early: a line starts at lowerBound exactly when the
        // byte before it is "\n".
        let sourceStart = max(0, lower - 1)
        let source = try ByteSource(file: file, offset: sourceStart)
        let scanner = JSONLineScanner(textKey: textKey)
        let numbered = lower == 0

        var capacity = 2 * Self.readBytes
        var buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        var start = 0, end = 0, searched = 0
        var base = sourceStart        // stream offset of buffer[0]
        var lineStart = sourceStart   // stream offset of the current line
        var lineNumber = 0
        var ended = false
        var state = lower > 0 ? LineState.seekingRangeStart : .reading
        if state == .reading && lineStart >= upper { return counts }

        func bad(_ reason: String) throws {
            let error: InputError = numbered
                ? .badLine(file: file.path, line: lineNumber, reason: reason)
                : .badLineAt(file: file.path, offset: lineStart, reason: reason)
            if onBadLine == .fail { throw error }
            counts.badLines += 1
            if counts.firstBadLines.count < InputCounts.maxBadLineMessages {
                counts.firstBadLines.append(error.description)
            }
        }

        func handle(_ p: UnsafePointer<UInt8>, _ count: Int) throws {
            lineNumber += 1
            counts.lines += 1
            if count > maxLineBytes {
                try bad("the line is longer than \(maxLineBytes) bytes")
                return
            }
            let line = UnsafeBufferPointer(start: p, count: count)
            switch scanner.scan(line) {
            case .blank:
                break
            case .bad(let reason):
                try bad(reason)
            case .text(let s, let e, let escaped):
                let text = scanner.text(line, start: s, end: e, escaped: escaped)
                if text.isEmpty {
                    counts.emptyDocuments += 1
                } else {
                    counts.documents += 1
                    counts.textBytes += text.count
                    try Self.deliver(text, body)
                }
            }
        }

        while true {
            if searched < end, let hit = memchr(buffer + searched, Int32(UInt8(ascii: "\n")), end - searched) {
                let newline = UnsafeMutableRawPointer(hit).assumingMemoryBound(to: UInt8.self) - buffer
                switch state {
                case .seekingRangeStart:
                    state = .reading
                case .skippingLongLine:
                    counts.inputBytes += base + newline + 1 - lineStart
                    state = .reading
                case .reading:
                    counts.inputBytes += base + newline + 1 - lineStart
                    try handle(buffer + start, newline - start)
                }
                start = newline + 1
                searched = start
                lineStart = base + start
                if lineStart >= upper { break }
                continue
            }
            searched = end
            if ended {
                switch state {
                case .reading where start < end:
                    counts.inputBytes += end - start
                    try handle(buffer + start, end - start)
                case .skippingLongLine:
                    counts.inputBytes += base + end - lineStart
                default:
                    break
                }
                break
            }
            if state == .reading && end - start > maxLineBytes {
                // Refuse the line now and drop the rest of it as it comes,
                // rather than holding a line of unbounded length.
                lineNumber += 1
                counts.lines += 1
                try bad("the line is longer than \(maxLineBytes) bytes")
                state = .skippingLongLine
            }
            if state != .reading {
                base += end
                start = 0
                end = 0
                searched = 0
            } else if start > 0 {
                memmove(buffer, buffer + start, end - start)
                base += start
                end -= start
                searched -= start
                start = 0
            }
            if end == capacity {
                // One partial line fills the buffer (and is ≤ maxLineBytes): grow.
                let grown = min(2 * capacity, maxLineBytes + Self.readBytes)
                let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
                bigger.update(from: buffer, count: end)
                buffer.deallocate()
                buffer = bigger
                capacity = grown
            }
            let n = try source.read(into: UnsafeMutableRawBufferPointer(start: buffer + end, count: capacity - end))
            if n == 0 { ended = true } else { end += n }
        }
        return counts
    }
}
