import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a Megatron indexed dataset (see IndexedDatasetFormat) the way
/// Megatron's `IndexedDatasetBuilder` does — the same bytes for the same
/// documents — but for corpora of any size and so that nothing half-written
/// is ever taken for a dataset:
/// - tokens go to `prefix.bin.tmp` through a 1 MiB buffer;
/// - sequence lengths and document indices are spooled to unlinked
///   temporary files (a billion documents would not fit in memory, and an
///   unlinked file leaves nothing behind when the writer is killed);
/// - `finish` writes `prefix.idx.tmp` from the spools, fsyncs both, and
///   renames the .bin before the .idx: an .idx exists only beside a
///   complete .bin.
///
/// Text pretraining: `addDocument` writes one document as one sequence
/// (an empty document as one empty sequence, as Megatron's builder does for
/// `add_document([], [0])`). `addDocuments(from:where:)` keeps the document
/// structure of the dataset it copies.
public final class IndexedDatasetWriter {
    public let prefix: String
    public let dtype: IndexedDType
    public private(set) var documents = 0
    public private(set) var sequences = 0
    public private(set) var tokens = 0
    public private(set) var binBytes = 0
    /// The checksums (Checksum64) of the final .bin and .idx, once finished.
    public private(set) var binChecksum: String?
    public private(set) var idxChecksum: String?

    private var bin: BufferedFile
    private var lengths: BufferedFile   // Int32 LE per sequence
    private var docEnds: BufferedFile   // Int64 LE per document: the sequence count after it
    private var binSum = Checksum64()
    private var finished = false
    /// Tokens of the open document (appendToDocument) not yet ended.
    private var pendingTokens = 0

    private var binTmp: String { IndexedDatasetFormat.binPath(prefix) + ".tmp" }
    private var idxTmp: String { IndexedDatasetFormat.idxPath(prefix) + ".tmp" }

    public init(prefix: String, dtype: IndexedDType) throws {
        self.prefix = prefix
        self.dtype = dtype
        let binTmp = IndexedDatasetFormat.binPath(prefix) + ".tmp"
        guard dtype.isTokenDType else {
            throw IndexedDatasetError(file: binTmp, message: "cannot write tokens as \(dtype.name); Herd writes uint16 and int32 token files (IndexedDType.optimal)")
        }
        bin = try BufferedFile(creating: binTmp)
        do {
            lengths = try BufferedFile(spoolBeside: prefix, name: "lengths")
            docEnds = try BufferedFile(spoolBeside: prefix, name: "documents")
        } catch {
            bin.close()
            unlink(binTmp)
            throw error
        }
    }

    deinit {
        // Abandoned (an error upstream): the spools vanish with their
        // descriptors; the partial .bin is removed.
        if !finished {
            bin.close()
            unlink(binTmp)
        }
        lengths.close()
        docEnds.close()
    }

    private func checkOpen() throws {
        guard !finished else { throw IndexedDatasetError(file: binTmp, message: "the dataset is already finished") }
    }

    public func addDocument(_ tokens: [Int32]) throws {
        try tokens.withUnsafeBufferPointer { try addDocument($0) }
    }

    /// One document of one sequence.
    public func addDocument(_ tokens: UnsafeBufferPointer<Int32>) throws {
        try checkOpen()
        guard pendingTokens == 0 else { throw IndexedDatasetError(file: binTmp, message: "a document is open (appendToDocument without endOpenDocument)") }
        try appendToDocument(tokens)
        try endOpenDocument()
    }

    /// The next tokens of the document being written, which may be longer
    /// than memory (`herd data prepare` streams a plain-text file as one).
    public func appendToDocument(_ tokens: UnsafeBufferPointer<Int32>) throws {
        try checkOpen()
        let n = tokens.count
        guard pendingTokens + n <= Int(Int32.max) else {
            throw IndexedDatasetError(file: binTmp, message: "a document of \(pendingTokens + n) tokens is longer than a sequence length (Int32) can say")
        }
        if n > 0, let src = tokens.baseAddress {
            switch dtype {
            case .uint16:
                // Checked before anything is written, so that a refused
                // document leaves the dataset as it was: one OR over the
                // high halves (a vectorised pass), then the search for the
                // culprit only when there is one.
                var high: UInt32 = 0
                for i in 0..<n { high |= UInt32(bitPattern: src[i]) & 0xFFFF_0000 }
                if high != 0, let bad = tokens.firstIndex(where: { !dtype.tokenRange.contains($0) }) {
                    throw IndexedDatasetError(file: binTmp, message: "token \(tokens[bad]) (position \(bad) of document \(documents)) does not fit the dataset's dtype uint16 (0...65535); use int32 for vocabularies of 65,500 tokens or more")
                }
                var done = 0
                while done < n {
                    let m = min(n - done, bin.free / 2)
                    if m == 0 { try flushBin(); continue }
                    let dst = (bin.buffer + bin.used).assumingMemoryBound(to: UInt16.self)
                    let from = src + done
                    for i in 0..<m { dst[i] = UInt16(truncatingIfNeeded: from[i]).littleEndian }
                    bin.used += 2 * m
                    done += m
                }
            default:   // int32: the tokens' own bytes (hosts are little-endian, as the file)
                try appendBin(UnsafeRawBufferPointer(tokens))
            }
        }
        pendingTokens += n
        self.tokens += n
        binBytes += n * dtype.byteSize
    }

    /// Ends the document `appendToDocument` wrote, as one sequence.
    public func endOpenDocument() throws {
        try checkOpen()
        var length = Int32(pendingTokens).littleEndian
        try withUnsafeBytes(of: &length) { try lengths.append($0) }
        sequences += 1
        pendingTokens = 0
        try endDocument()
    }

    /// Copies the documents of `reader` (same dtype) for which `keep(d)`
    /// holds, with their sequences: the bytes of each run of consecutive
    /// kept documents in blocks of up to 1 MiB, the lengths as stored.
    /// Merges the per-rank parts of `herd data prepare` into one dataset.
    /// An error here (a read failing) leaves this writer partway through a
    /// run: abandon it (its partial .bin is removed, no .idx was written).
    public func addDocuments(from reader: IndexedDatasetReader, where keep: (Int) -> Bool) throws {
        try checkOpen()
        guard pendingTokens == 0 else { throw IndexedDatasetError(file: binTmp, message: "a document is open (appendToDocument without endOpenDocument)") }
        guard reader.dtype == dtype else {
            throw IndexedDatasetError(file: reader.idxPath, message: "holds \(reader.dtype.name) tokens; the dataset being written (\(binTmp)) holds \(dtype.name)")
        }
        var d = 0
        while d < reader.documentCount {
            guard keep(d) else { d += 1; continue }
            // The run of kept documents from d.
            let first = reader.documentSequences(d)
            var last = first
            try docEnd(sequences + first.count)   // d's end within this dataset
            var e = d + 1
            while e < reader.documentCount && keep(e) {
                let r = reader.documentSequences(e)
                try docEnd(sequences + r.upperBound - first.lowerBound)
                last = r
                e += 1
            }
            let seqs = first.lowerBound..<last.upperBound
            try reader.withLengthBytes(seqs) { try lengths.append($0) }
            var offset = reader.sequencePointer(seqs.lowerBound)
            let end = reader.sequencePointer(seqs.upperBound)
            while offset < end {
                if bin.free == 0 { try flushBin() }
                let m = min(end - offset, bin.free)
                try reader.readBytes(at: offset, count: m, into: bin.buffer + bin.used)
                bin.used += m
                offset += m
            }
            let bytes = reader.sequencePointer(seqs.upperBound) - reader.sequencePointer(seqs.lowerBound)
            sequences += seqs.count
            documents += e - d
            binBytes += bytes
            tokens += bytes / dtype.byteSize
            d = e
        }
    }

    private func endDocument() throws {
        try docEnd(sequences)
        documents += 1
    }

    private func docEnd(_ sequenceIndex: Int) throws {
        var v = Int64(sequenceIndex).littleEndian
        try withUnsafeBytes(of: &v) { try docEnds.append($0) }
    }

    private func appendBin(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes
        while !rest.isEmpty {
            if bin.free == 0 { try flushBin() }
            let m = min(rest.count, bin.free)
            if let b = rest.baseAddress { (bin.buffer + bin.used).copyMemory(from: b, byteCount: m) }
            bin.used += m
            rest = UnsafeRawBufferPointer(rebasing: rest[m...])
        }
    }

    private func flushBin() throws {
        binSum.update(UnsafeRawBufferPointer(start: bin.buffer, count: bin.used))
        try bin.flush()
    }

    /// Writes the .idx, makes both files durable, and publishes them: .bin
    /// first, then .idx, replacing any dataset at the prefix.
    public func finish() throws {
        try checkOpen()
        guard pendingTokens == 0 else { throw IndexedDatasetError(file: binTmp, message: "the last document was not ended (endOpenDocument)") }
        try flushBin()
        try lengths.flush()
        try docEnds.flush()

        let idxFinal = IndexedDatasetFormat.idxPath(prefix), binFinal = IndexedDatasetFormat.binPath(prefix)
        var idx = try BufferedFile(creating: idxTmp)
        var idxSum = Checksum64()
        do {
            let header = IndexedDatasetHeader(dtype: dtype, sequenceCount: sequences, documentIndexCount: documents + 1)
            try header.serialized().withUnsafeBytes { try idx.append($0, checksum: &idxSum) }
            // Lengths as spooled; then the pointers, from the lengths again;
            // then the document indices after the leading 0.
            try lengths.stream { try idx.append($0, checksum: &idxSum) }
            var pointer: Int64 = 0
            let width = Int64(dtype.byteSize)
            try lengths.stream { chunk in
                var out = [Int64](repeating: 0, count: chunk.count / 4)
                for i in 0..<out.count {
                    out[i] = pointer.littleEndian
                    pointer += Int64(Int32(littleEndian: chunk.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) * width
                }
                try out.withUnsafeBytes { try idx.append($0, checksum: &idxSum) }
            }
            var zero = Int64(0)
            try withUnsafeBytes(of: &zero) { try idx.append($0, checksum: &idxSum) }
            try docEnds.stream { try idx.append($0, checksum: &idxSum) }
            try idx.flush()
            guard header.indexFileSize == idx.written, pointer == Int64(binBytes), bin.written == binBytes else {
                throw IndexedDatasetError(file: idxTmp, message: "wrote \(idx.written) bytes for \(sequences) sequences and \(documents) documents; internal inconsistency")
            }
            try bin.sync()
            try idx.sync()
        } catch {
            idx.close()
            unlink(idxTmp)
            throw error
        }
        idx.close()
        bin.close()
        finished = true
        // An old .idx at the prefix would describe the new .bin once it is
        // renamed: remove it first, and sync the directory between the
        // steps, so that a crash leaves the old dataset, no dataset, or the
        // new one.
        let dir = (prefix as NSString).deletingLastPathComponent
        if unlink(idxFinal) != 0 && errno != ENOENT { throw Self.posixError(idxFinal, "cannot remove the old index") }
        guard rename(binTmp, binFinal) == 0 else { throw Self.posixError(binFinal, "cannot rename \(binTmp) to it") }
        try Self.syncDirectory(dir.isEmpty ? "." : dir)
        guard rename(idxTmp, idxFinal) == 0 else { throw Self.posixError(idxFinal, "cannot rename \(idxTmp) to it") }
        try Self.syncDirectory(dir.isEmpty ? "." : dir)
        binChecksum = binSum.hex
        idxChecksum = idxSum.hex
    }

    static func posixError(_ file: String, _ what: String) -> IndexedDatasetError {
        IndexedDatasetError(file: file, message: "\(what): \(String(cString: strerror(errno)))")
    }

    static func syncDirectory(_ dir: String) throws {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw posixError(dir, "cannot open the directory to sync it") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw posixError(dir, "cannot sync the directory") }
    }
}

/// A file written through a 1 MiB buffer (one write(2) per MiB, not per
/// document), which a spool can also read back from the start. Owned by one
/// writer (it frees its buffer in `close`, so it is never copied).
private struct BufferedFile {
    static let capacity = 1 << 20
    let path: String
    private(set) var fd: Int32
    let buffer: UnsafeMutableRawPointer
    var used = 0
    private(set) var written = 0
    var free: Int { Self.capacity - used }

    init(creating path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw IndexedDatasetWriter.posixError(path, "cannot create") }
        buffer = .allocate(byteCount: Self.capacity, alignment: 16)
    }

    /// A read-write file beside `prefix` that is unlinked at once: it lives
    /// as long as its descriptor, so a killed writer leaves nothing of it.
    init(spoolBeside prefix: String, name: String) throws {
        var template = Array("\(prefix).\(name)-XXXXXX.spool".utf8CString)
        fd = mkstemps(&template, 6)
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard fd >= 0 else { throw IndexedDatasetWriter.posixError(path, "cannot create a spool file") }
        unlink(path)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        buffer = .allocate(byteCount: Self.capacity, alignment: 16)
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes
        while !rest.isEmpty {
            if used == Self.capacity { try flush() }
            let m = min(rest.count, free)
            if let b = rest.baseAddress { (buffer + used).copyMemory(from: b, byteCount: m) }
            used += m
            rest = UnsafeRawBufferPointer(rebasing: rest[m...])
        }
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer, checksum: inout Checksum64) throws {
        checksum.update(bytes)
        try append(bytes)
    }

    mutating func flush() throws {
        var done = 0
        while done < used {
            let n = write(fd, buffer + done, used - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw IndexedDatasetWriter.posixError(path, "cannot write")
            }
            done += n
        }
        written += used
        used = 0
    }

    func sync() throws {
        guard fsync(fd) == 0 else { throw IndexedDatasetWriter.posixError(path, "cannot sync") }
    }

    /// The flushed contents from the start, in chunks of up to 1 MiB (whole
    /// multiples of 8 bytes but the last), through the buffer: call after flush.
    func stream(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        precondition(used == 0, "stream a flushed spool")
        var offset = 0
        while offset < written {
            let want = min(Self.capacity, written - offset)
            var got = 0
            while got < want {
                let n = pread(fd, buffer + got, want - got, off_t(offset + got))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw IndexedDatasetWriter.posixError(path, "cannot read back the spool")
                }
                if n == 0 { throw IndexedDatasetError(file: path, message: "the spool ended at \(offset + got) bytes of \(written)") }
                got += n
            }
            try body(UnsafeRawBufferPointer(start: buffer, count: want))
            offset += want
        }
    }

    /// Closes the descriptor and frees the buffer; once only.
    mutating func close() {
        guard fd >= 0 else { return }
        closeDescriptor(fd)
        fd = -1
        buffer.deallocate()
    }
}

/// close(2), callable from a type that has its own `close`.
private func closeDescriptor(_ fd: Int32) { _ = close(fd) }
