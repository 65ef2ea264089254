import Foundation
import CZlib
import CZstd
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The decompressed bytes of one input file, streamed into the caller's
/// buffer: plain files through read(2), gzip through zlib (every member of a
/// multi-member file, as `cat a.gz b.gz` makes), zstd through
/// ZSTD_decompressStream (every frame). Memory is one fixed 1 MiB input
/// buffer plus the decompressor's state, whatever the file's size.
///
/// A class: it owns a file descriptor and C decompressor state (zlib's
/// z_stream must stay at one address, it points back at itself), freed in
/// deinit.
public final class ByteSource {
    public let file: InputFile
    /// Decompressed bytes delivered so far (plus the start offset for plain files).
    public private(set) var position: Int

    private let fd: Int32
    private let decoder: Decoder
    /// Compressed input: [inStart, inEnd) of inBuffer not yet consumed.
    private let inBuffer: UnsafeMutableRawBufferPointer
    private var inStart = 0, inEnd = 0
    /// Compressed bytes read from the file so far.
    private var fileOffset = 0
    private var fileEnded = false
    private var finished = false

    private enum Decoder {
        case plain
        case gzip(UnsafeMutablePointer<z_stream>)
        case zstd(OpaquePointer)
    }

    /// Sized so that a read(2) is large enough to be cheap and a stream of
    /// many readers (one per core) stays small.
    static let inputBufferBytes = 1 << 20

    /// Opens `file`. `offset` (plain files only) starts the stream at that
    /// byte, for readers of byte ranges.
    public init(file: InputFile, offset: Int = 0) throws(InputError) {
        self.file = file
        if offset != 0 && file.compression != .none {
            throw .unsupported(file: file.path, reason: "cannot start reading a compressed file at byte \(offset)")
        }
        let fd = open(file.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotRead(path: file.path, reason: String(cString: strerror(errno))) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .notRegularFile(path: file.path)
        }
        #if os(Linux)
        // The corpus is read once, front to back: ask for aggressive readahead.
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_SEQUENTIAL))
        #endif
        if offset > 0 {
            guard lseek(fd, off_t(offset), SEEK_SET) >= 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw .cannotRead(path: file.path, reason: "seek to byte \(offset): \(reason)")
            }
        }
        self.fd = fd
        self.position = offset
        switch file.compression {
        case .none:
            decoder = .plain
            inBuffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        case .gzip:
            let strm = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            strm.initialize(to: z_stream())
            // 15 + 32: the largest window, and detect the gzip (or zlib) header.
            let rc = herd_inflateInit2(strm, 15 + 32)
            guard rc == Z_OK else {
                strm.deallocate()
                close(fd)
                throw .corrupt(file: file.path, offset: 0, reason: "zlib could not start (code \(rc))")
            }
            decoder = .gzip(strm)
            inBuffer = .allocate(byteCount: Self.inputBufferBytes, alignment: 16)
        case .zstd:
            guard let dctx = ZSTD_createDCtx() else {
                close(fd)
                throw .corrupt(file: file.path, offset: 0, reason: "zstd could not start (out of memory)")
            }
            decoder = .zstd(dctx)
            inBuffer = .allocate(byteCount: Self.inputBufferBytes, alignment: 16)
        }
    }

    deinit {
        switch decoder {
        case .plain: break
        case .gzip(let strm):
            inflateEnd(strm)
            strm.deinitialize(count: 1)
            strm.deallocate()
        case .zstd(let dctx):
            ZSTD_freeDCtx(dctx)
        }
        if inBuffer.baseAddress != nil { inBuffer.deallocate() }
        close(fd)
    }

    /// Fills `buffer` with the next decompressed bytes; returns how many, 0
    /// only at the end of the stream. Compressed streams fill the buffer
    /// whole unless the stream ends; plain files return what read(2) gives.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(InputError) -> Int {
        guard let out = buffer.baseAddress, buffer.count > 0, !finished else { return 0 }
        let n: Int
        switch decoder {
        case .plain: n = try readPlain(out, buffer.count)
        case .gzip(let strm): n = try readGzip(strm, out, buffer.count)
        case .zstd(let dctx): n = try readZstd(dctx, out, buffer.count)
        }
        position += n
        return n
    }

    /// read(2), retried on EINTR.
    private func readFile(_ p: UnsafeMutableRawPointer, _ count: Int) throws(InputError) -> Int {
        while true {
            let n = systemRead(fd, p, count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw .cannotRead(path: file.path, reason: String(cString: strerror(errno)))
        }
    }

    private func readPlain(_ out: UnsafeMutableRawPointer, _ count: Int) throws(InputError) -> Int {
        let n = try readFile(out, count)
        if n == 0 { finished = true }
        return n
    }

    /// Refills the compressed input buffer once it is consumed.
    private func refill() throws(InputError) {
        guard inStart == inEnd, !fileEnded, let base = inBuffer.baseAddress else { return }
        let n = try readFile(base, inBuffer.count)
        inStart = 0
        inEnd = n
        fileOffset += n
        if n == 0 { fileEnded = true }
    }

    /// The compressed byte offset the decompressor has reached.
    private var consumedOffset: Int { fileOffset - (inEnd - inStart) }

    /// Whether the last gzip member ended (Z_STREAM_END) and no byte of a next
    /// one has been decoded: the only place the file may end.
    private var gzipMemberEnded = false

    private func readGzip(_ strm: UnsafeMutablePointer<z_stream>, _ out: UnsafeMutableRawPointer, _ count: Int) throws(InputError) -> Int {
        let outCount = min(count, Int(UInt32.max))
        strm.pointee.next_out = out.assumingMemoryBound(to: Bytef.self)
        strm.pointee.avail_out = uInt(outCount)
        while strm.pointee.avail_out > 0 {
            try refill()
            if inStart == inEnd {
                if gzipMemberEnded {
                    finished = true
                    break
                }
                throw .truncated(file: file.path, offset: consumedOffset)
            }
            if gzipMemberEnded {
                // More bytes after a member: the next member of a concatenation.
                inflateReset(strm)
                gzipMemberEnded = false
            }
            guard let inBase = inBuffer.baseAddress else { break }   // compressed sources always allocate it
            strm.pointee.next_in = (inBase + inStart).assumingMemoryBound(to: Bytef.self)
            strm.pointee.avail_in = uInt(inEnd - inStart)
            let rc = inflate(strm, Z_NO_FLUSH)
            inStart = inEnd - Int(strm.pointee.avail_in)
            switch rc {
            case Z_OK, Z_BUF_ERROR:
                // Z_BUF_ERROR: no progress possible with this input; the loop
                // refills it (or reports the truncation at the end of the file).
                continue
            case Z_STREAM_END:
                gzipMemberEnded = true
            default:
                let reason = strm.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw .corrupt(file: file.path, offset: consumedOffset, reason: reason)
            }
        }
        return outCount - Int(strm.pointee.avail_out)
    }

    /// ZSTD_decompressStream's return value at its last step that made
    /// progress: 0 when a frame had just been completely decoded and flushed,
    /// the only place the file may end (1 before any: an empty file is not
    /// a zstd stream).
    private var zstdHint = 1

    private func readZstd(_ dctx: OpaquePointer, _ out: UnsafeMutableRawPointer, _ count: Int) throws(InputError) -> Int {
        var output = ZSTD_outBuffer(dst: out, size: count, pos: 0)
        while output.pos < output.size {
            try refill()
            let before = output.pos
            var input = ZSTD_inBuffer(src: inBuffer.baseAddress.map { UnsafeRawPointer($0) + inStart },
                                      size: inEnd - inStart, pos: 0)
            let rc = ZSTD_decompressStream(dctx, &output, &input)
            inStart += input.pos
            if ZSTD_isError(rc) != 0 {
                throw .corrupt(file: file.path, offset: consumedOffset, reason: String(cString: ZSTD_getErrorName(rc)))
            }
            let progressed = output.pos != before || input.pos != 0
            // A call without progress (no input left) returns the size of
            // the next frame's header; what counts is the last real step.
            if progressed { zstdHint = rc }
            if !progressed && inStart == inEnd && fileEnded {
                // No input left and nothing more comes out: the end, which is
                // only clean right after a frame.
                if zstdHint == 0 {
                    finished = true
                    break
                }
                throw .truncated(file: file.path, offset: consumedOffset)
            }
        }
        return output.pos
    }
}

/// read(2), named apart because ByteSource.read shadows it.
private func systemRead(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.read(fd, p, count)
    #else
    return Darwin.read(fd, p, count)
    #endif
}
