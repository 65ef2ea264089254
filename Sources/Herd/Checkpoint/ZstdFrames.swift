import CZstd
import Foundation

/// Checkpoint bytes on disk: each tensor piece is one standard zstd frame
/// (with zstd's content checksum) appended to its rank's file, so the file
/// as a whole is a valid multi-frame .zst that the `zstd` tool can test and
/// decompress, and a reader can decode any one piece from its offset.
/// Compression streams from the caller's buffer in chunks: no second copy
/// of the data is made.
public final class ZstdFrameWriter {
    let fd: Int32
    let cctx: OpaquePointer
    let path: String
    public private(set) var bytesWritten = 0
    public private(set) var checksum = Checksum64()
    var out: [UInt8]

    public init(path: String, level: Int, threads: Int) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CheckpointSpace.error(path, "create", errno: errno) }
        cctx = ZSTD_createCCtx()
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, Int32(level))
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
        if threads > 1 { ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, Int32(threads)) }
        out = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
    }

    deinit {
        ZSTD_freeCCtx(cctx)
        if fd >= 0 { close(fd) }
    }

    /// Compresses `byteCount` bytes into one frame; returns (offset, compressed size).
    public func writeFrame(_ data: UnsafeRawPointer, byteCount: Int) throws -> (offset: Int, size: Int) {
        let start = bytesWritten
        let chunk = 1 << 20
        var done = 0
        repeat {
            let n = min(chunk, byteCount - done)
            let last = done + n == byteCount
            var input = ZSTD_inBuffer(src: data + done, size: n, pos: 0)
            var finished = false
            while !finished {
                let remaining: Int = try out.withUnsafeMutableBytes { o in
                    var output = ZSTD_outBuffer(dst: o.baseAddress, size: o.count, pos: 0)
                    let r = ZSTD_compressStream2(cctx, &output, &input, last ? ZSTD_e_end : ZSTD_e_continue)
                    if ZSTD_isError(r) != 0 { throw CheckpointError.io(path, "zstd: \(String(cString: ZSTD_getErrorName(r)))") }
                    try writeAll(o.baseAddress!, output.pos)
                    return r
                }
                finished = last ? remaining == 0 : input.pos == input.size
            }
            done += n
        } while done < byteCount
        return (start, bytesWritten - start)
    }

    private func writeAll(_ p: UnsafeRawPointer, _ n: Int) throws {
        checksum.update(UnsafeRawBufferPointer(start: p, count: n))
        var off = 0
        while off < n {
            let w = write(fd, p + off, n - off)
            guard w > 0 else { throw CheckpointSpace.error(path, "write", errno: w < 0 ? errno : EIO) }
            off += w
        }
        bytesWritten += n
    }

    /// fsync and close: the bytes are on disk when this returns.
    public func finish() throws {
        guard fsync(fd) == 0 else { throw CheckpointSpace.error(path, "fsync", errno: errno) }
    }
}

/// Decodes one frame at [offset, offset + size) of a file into `byteCount`
/// bytes at `into`; any mismatch (bad frame, wrong size, content checksum)
/// is an error naming the file.
public func zstdReadFrame(path: String, offset: Int, size: Int, into: UnsafeMutableRawPointer, byteCount: Int) throws {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw CheckpointError.missing(path) }
    defer { close(fd) }
    var compressed = [UInt8](repeating: 0, count: size)
    let got = compressed.withUnsafeMutableBytes { pread(fd, $0.baseAddress, size, off_t(offset)) }
    guard got == size else { throw CheckpointError.corrupt(path, "truncated: frame at \(offset) needs \(size) bytes, read \(max(got, 0))") }
    let dctx = ZSTD_createDCtx()
    defer { ZSTD_freeDCtx(dctx) }
    try compressed.withUnsafeBytes { c in
        var input = ZSTD_inBuffer(src: c.baseAddress, size: size, pos: 0)
        var output = ZSTD_outBuffer(dst: into, size: byteCount, pos: 0)
        while true {
            let r = ZSTD_decompressStream(dctx, &output, &input)
            if ZSTD_isError(r) != 0 { throw CheckpointError.corrupt(path, "zstd frame at \(offset): \(String(cString: ZSTD_getErrorName(r)))") }
            if r == 0 { break }   // frame complete (and its checksum verified)
            if input.pos == input.size && output.pos == output.size {
                throw CheckpointError.corrupt(path, "frame at \(offset) holds more than the \(byteCount) bytes the manifest gives")
            }
            if input.pos == input.size { throw CheckpointError.corrupt(path, "frame at \(offset) ends early") }
        }
        guard output.pos == byteCount else {
            throw CheckpointError.corrupt(path, "frame at \(offset) holds \(output.pos) bytes, the manifest gives \(byteCount)")
        }
    }
}

public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    case io(String, String)
    case missing(String)
    case corrupt(String, String)
    case incompatible(String)
    case none(String)
    /// This rank's save found its filesystem full (ENOSPC or EDQUOT).
    case noSpace(NoSpace)
    /// Another rank's save found no space (the checkpoint's temporary directory).
    case noSpaceOnAnotherRank(String)

    public var description: String {
        switch self {
        case let .io(p, why): return "\(p): \(why)"
        case let .missing(p): return "\(p): missing"
        case let .corrupt(p, why): return "\(p): corrupt checkpoint file: \(why)"
        case let .incompatible(why): return "the checkpoint does not fit this job: \(why)"
        case let .none(dir): return "\(dir): no complete checkpoint"
        case let .noSpace(s): return s.description
        case let .noSpaceOnAnotherRank(dir): return "\(dir): another rank's part of this checkpoint found no space (its rank records why)"
        }
    }
}
