import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Megatron indexed dataset opened for reading: the .idx mapped read-only
/// (it is read at random and its pages are shared by every reader of the
/// node), the .bin read with pread (no shared cursor, so any number of
/// threads read at once). Everything the index says is checked once at
/// open, so that no later read trusts an unchecked number from the file:
/// the layout against the file size, the document indices, every pointer
/// against the lengths before it, and the .bin size against the total.
public final class IndexedDatasetReader: @unchecked Sendable {
    public let prefix: String
    public let binPath: String
    public let idxPath: String
    public let header: IndexedDatasetHeader
    public var dtype: IndexedDType { header.dtype }
    public var sequenceCount: Int { header.sequenceCount }
    /// Documents: one fewer than the document indices.
    public var documentCount: Int { header.documentIndexCount - 1 }
    public let tokenCount: Int
    /// The .bin's size: tokenCount × the dtype's size.
    public let binBytes: Int

    // Immutable after init: the mapping and the descriptor are only read.
    private let map: UnsafeRawPointer
    private let mapSize: Int
    private let binFD: Int32

    public init(prefix path: String) throws {
        prefix = IndexedDatasetFormat.prefix(of: path)
        binPath = IndexedDatasetFormat.binPath(prefix)
        idxPath = IndexedDatasetFormat.idxPath(prefix)
        let idxPath = self.idxPath, binPath = self.binPath
        func fail(_ file: String, _ m: String) -> IndexedDatasetError { IndexedDatasetError(file: file, message: m) }

        let idxFD = open(idxPath, O_RDONLY | O_CLOEXEC)
        guard idxFD >= 0 else { throw fail(idxPath, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(idxFD) }   // the mapping outlives the descriptor
        var st = stat()
        guard fstat(idxFD, &st) == 0 else { throw fail(idxPath, "cannot stat: \(String(cString: strerror(errno)))") }
        let size = Int(st.st_size)
        guard size >= IndexedDatasetFormat.headerSize else {
            throw fail(idxPath, "is \(size) bytes, shorter than the \(IndexedDatasetFormat.headerSize)-byte header of a Megatron index")
        }
        guard let m = mmap(nil, size, PROT_READ, MAP_SHARED, idxFD, 0), m != MAP_FAILED else {
            throw fail(idxPath, "cannot map: \(String(cString: strerror(errno)))")
        }
        let base = UnsafeRawPointer(m)
        // From here on a failure must unmap (init throws before deinit can).
        var ok = false
        defer { if !ok { munmap(m, size) } }

        let h = try IndexedDatasetHeader.parse(UnsafeRawBufferPointer(start: base, count: size), file: idxPath)
        guard h.dtype.isTokenDType else {
            throw fail(idxPath, "holds tokens as \(h.dtype.name) (dtype code \(h.dtype.rawValue)); Herd trains on uint16 and int32 token files only")
        }
        let s = h.sequenceCount, d = h.documentIndexCount
        // Bound the counts by the file before multiplying: a real file has
        // 12 bytes per sequence and 8 per document index.
        guard s <= size / 12, d <= size / 8, let expected = h.indexFileSize else {
            throw fail(idxPath, "header says \(s) sequences and \(d) document indices, far more than its \(size) bytes can hold")
        }
        guard size == expected else {
            if size - expected == s && s > 0 {
                throw fail(idxPath, "has one byte per sequence after the document indices: the modes of a multimodal dataset, which are not supported")
            }
            throw fail(idxPath, "is \(size) bytes; its header (\(s) sequences, \(d) document indices) needs exactly \(expected) = 34 + 12×\(s) + 8×\(d)")
        }
        guard d >= 1 else {
            throw fail(idxPath, "has no document indices; Megatron writes at least the leading 0")
        }

        // Document indices: 0 first, S last, never decreasing. (A document
        // of no sequences, as preprocess_data.py writes for an empty text,
        // repeats an index and is allowed.)
        let docs = base + h.documentIndicesOffset
        var previous: Int64 = 0
        for i in 0..<d {
            let v = Int64(littleEndian: docs.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
            if i == 0 && v != 0 { throw fail(idxPath, "document index 0 is \(v); the first document must start at sequence 0") }
            if v < previous { throw fail(idxPath, "document index \(i) is \(v), less than the one before it (\(previous))") }
            if v > Int64(s) { throw fail(idxPath, "document index \(i) is \(v), beyond the \(s) sequences") }
            previous = v
        }
        guard previous == Int64(s) else {
            throw fail(idxPath, "the last document index is \(previous); it must be the sequence count \(s)")
        }

        // Lengths and pointers: each pointer where the sequences before it end.
        let lengths = base + h.lengthsOffset, pointers = base + h.pointersOffset
        let width = Int64(h.dtype.byteSize)
        var end: Int64 = 0
        for i in 0..<s {
            let length = Int32(littleEndian: lengths.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
            let pointer = Int64(littleEndian: pointers.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
            guard length >= 0 else { throw fail(idxPath, "sequence \(i) has length \(length)") }
            guard pointer == end else {
                throw fail(idxPath, "sequence \(i) starts at byte \(pointer) of the .bin; the lengths before it say \(end)")
            }
            let (next, overflow) = end.addingReportingOverflow(Int64(length) * width)
            guard !overflow else { throw fail(idxPath, "the sequence lengths add up to more bytes than a file can hold") }
            end = next
        }

        let fd = open(binPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail(binPath, "cannot open: \(String(cString: strerror(errno)))") }
        var bst = stat()
        guard fstat(fd, &bst) == 0 else {
            let e = errno
            close(fd)
            throw fail(binPath, "cannot stat: \(String(cString: strerror(e)))")
        }
        guard Int64(bst.st_size) == end else {
            close(fd)
            throw fail(binPath, "is \(bst.st_size) bytes; its index \(idxPath) describes \(end) (\(end / width) tokens of \(h.dtype.name))")
        }
        header = h
        map = base
        mapSize = size
        binFD = fd
        binBytes = Int(end)
        tokenCount = Int(end / width)
        ok = true
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: map), mapSize)
        close(binFD)
    }

    /// Tokens in sequence i.
    public func sequenceLength(_ i: Int) -> Int {
        precondition(i >= 0 && i < sequenceCount, "sequence \(i) of \(sequenceCount)")
        return Int(Int32(littleEndian: map.loadUnaligned(fromByteOffset: header.lengthsOffset + 4 * i, as: Int32.self)))
    }

    /// The byte offset of sequence i in the .bin (checked at open).
    func sequencePointer(_ i: Int) -> Int {
        precondition(i >= 0 && i <= sequenceCount, "sequence \(i) of \(sequenceCount)")
        if i == sequenceCount { return binBytes }
        return Int(Int64(littleEndian: map.loadUnaligned(fromByteOffset: header.pointersOffset + 8 * i, as: Int64.self)))
    }

    /// The token offset of sequence i in the .bin's token stream
    /// (sequenceCount gives tokenCount).
    public func sequenceStart(_ i: Int) -> Int { sequencePointer(i) / dtype.byteSize }

    /// The sequences of document d.
    public func documentSequences(_ d: Int) -> Range<Int> {
        precondition(d >= 0 && d < documentCount, "document \(d) of \(documentCount)")
        let at = header.documentIndicesOffset + 8 * d
        let lo = Int(Int64(littleEndian: map.loadUnaligned(fromByteOffset: at, as: Int64.self)))
        let hi = Int(Int64(littleEndian: map.loadUnaligned(fromByteOffset: at + 8, as: Int64.self)))
        return lo..<hi
    }

    /// The lengths of sequences `range` as the file stores them (Int32 LE),
    /// for a writer that copies them.
    func withLengthBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= sequenceCount)
        return try body(UnsafeRawBufferPointer(start: map + header.lengthsOffset + 4 * range.lowerBound, count: 4 * range.count))
    }

    /// Reads `count` bytes of the .bin from `offset`, all of them or an error.
    func readBytes(at offset: Int, count: Int, into buffer: UnsafeMutableRawPointer) throws {
        var done = 0
        while done < count {
            let n = pread(binFD, buffer + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw IndexedDatasetError(file: binPath, message: "cannot read \(count) bytes at \(offset): \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                throw IndexedDatasetError(file: binPath, message: "ends at byte \(offset + done), before the \(binBytes) its index describes (changed since it was opened?)")
            }
            done += n
        }
    }

    /// Tokens `tokenOffset ..< tokenOffset + count` of the concatenated
    /// token stream (spans may cross sequences and documents), as Int32.
    public func read(tokenOffset: Int, count: Int, into out: UnsafeMutablePointer<Int32>) throws {
        guard tokenOffset >= 0, count >= 0, tokenOffset <= tokenCount, count <= tokenCount - tokenOffset else {
            throw IndexedDatasetError(file: binPath, message: "tokens \(tokenOffset)..<\(tokenOffset) + \(count) are outside its \(tokenCount) tokens")
        }
        switch dtype {
        case .int32:
            try readBytes(at: 4 * tokenOffset, count: 4 * count, into: UnsafeMutableRawPointer(out))
            #if _endian(big)
            for i in 0..<count { out[i] = Int32(littleEndian: out[i]) }
            #endif
        case .uint16:
            // Through a 64 KiB stack buffer: one pread per 32 Ki tokens, and
            // a widening loop over two distinct buffers, which the compiler
            // vectorises (reading into `out` and widening in place would not).
            let chunk = 32_768
            try withUnsafeTemporaryAllocation(of: UInt16.self, capacity: chunk) { tmp in
                guard let t = tmp.baseAddress else { return }
                var done = 0
                while done < count {
                    let n = min(chunk, count - done)
                    try readBytes(at: 2 * (tokenOffset + done), count: 2 * n, into: UnsafeMutableRawPointer(t))
                    let dst = out + done
                    for i in 0..<n { dst[i] = Int32(UInt16(littleEndian: t[i])) }
                    done += n
                }
            }
        default:
            // Refused at open.
            preconditionFailure("dtype \(dtype.name) is refused at open")
        }
    }

    /// The tokens of sequence i.
    public func sequence(_ i: Int) throws -> [Int32] {
        guard i >= 0 && i < sequenceCount else {
            throw IndexedDatasetError(file: idxPath, message: "sequence \(i) is outside its \(sequenceCount) sequences")
        }
        let n = sequenceLength(i)
        return try [Int32](unsafeUninitializedCapacity: n) { buf, initialized in
            if let p = buf.baseAddress { try read(tokenOffset: sequenceStart(i), count: n, into: p) }
            initialized = n
        }
    }
}
