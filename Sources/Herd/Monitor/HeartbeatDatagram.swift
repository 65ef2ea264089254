import Foundation

/// A heartbeat as one UDP datagram, and its acknowledgement. Fixed-width
/// little-endian fields then two short strings: a coordinator watching
/// 16,384 ranks decodes a few thousand of these a second, so no JSON.
///
/// ```
/// beat: "HBT1" nonce:u64 rank:u32 pid:i32 step:i64 time:f64 progress:f64 rss:i64 peak:i64 (−1: unknown)
///       phase:u8 length + bytes, host:u8 length + bytes
/// ack:  "HBA1" nonce:u64 rank:u32
/// ```
/// `nonce` is the endpoint's (RUN/heartbeat-endpoint.json): a datagram for
/// another endpoint — a coordinator before this one, another job — is dropped.
public enum HeartbeatDatagram {
    static let beatMagic: [UInt8] = Array("HBT1".utf8), ackMagic: [UInt8] = Array("HBA1".utf8)
    public static let maximumBytes = 4 + 8 + 4 + 4 + 8 * 5 + 1 + 255 + 1 + 255

    public static func beat(_ r: HeartbeatRecord, nonce: UInt64) -> [UInt8] {
        var out = beatMagic
        out.reserveCapacity(96 + r.phase.utf8.count + r.host.utf8.count)
        append(&out, nonce)
        append(&out, UInt32(truncatingIfNeeded: r.rank))
        append(&out, UInt32(bitPattern: r.pid))
        append(&out, UInt64(bitPattern: Int64(r.step)))
        append(&out, r.time.bitPattern)
        append(&out, r.progressTime.bitPattern)
        append(&out, UInt64(bitPattern: Int64(r.residentBytes ?? -1)))
        append(&out, UInt64(bitPattern: Int64(r.peakResidentBytes ?? -1)))
        for s in [r.phase, r.host] {
            let bytes = Array(s.utf8.prefix(255))
            out.append(UInt8(bytes.count))
            out += bytes
        }
        return out
    }

    /// The record and its nonce, or nil for anything that is not a well-formed beat.
    public static func decodeBeat(_ b: UnsafeRawBufferPointer) -> (HeartbeatRecord, nonce: UInt64)? {
        var at = 0
        guard b.count >= 4 + 8 + 4 + 4 + 40 + 2, b.prefix(4).elementsEqual(beatMagic) else { return nil }
        at = 4
        func u64() -> UInt64 { defer { at += 8 }; return b.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian }
        func u32() -> UInt32 { defer { at += 4 }; return b.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian }
        func string() -> String? {
            guard at < b.count else { return nil }
            let n = Int(b[at]); at += 1
            guard at + n <= b.count else { return nil }
            defer { at += n }
            return String(decoding: UnsafeRawBufferPointer(rebasing: b[at..<(at + n)]), as: UTF8.self)
        }
        let nonce = u64(), rank = u32(), pid = Int32(bitPattern: u32())
        let step = Int64(bitPattern: u64()), time = Double(bitPattern: u64()), progress = Double(bitPattern: u64())
        let rss = Int64(bitPattern: u64()), peak = Int64(bitPattern: u64())
        guard let phase = string(), let host = string(), rank < 1 << 24, step >= 0, time.isFinite, progress.isFinite else { return nil }
        return (HeartbeatRecord(rank: Int(rank), host: host, pid: pid, step: Int(step), phase: phase, time: time, progressTime: progress,
                                residentBytes: rss >= 0 ? Int(rss) : nil, peakResidentBytes: peak >= 0 ? Int(peak) : nil), nonce)
    }

    public static func ack(rank: Int, nonce: UInt64) -> [UInt8] {
        var out = ackMagic
        append(&out, nonce)
        append(&out, UInt32(truncatingIfNeeded: rank))
        return out
    }

    /// The acknowledged rank, when `b` is an ack for `nonce`.
    public static func decodeAck(_ b: UnsafeRawBufferPointer, nonce: UInt64) -> Int? {
        guard b.count == 16, b.prefix(4).elementsEqual(ackMagic),
              b.loadUnaligned(fromByteOffset: 4, as: UInt64.self).littleEndian == nonce else { return nil }
        return Int(b.loadUnaligned(fromByteOffset: 12, as: UInt32.self).littleEndian)
    }

    private static func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }
}

/// The IPv4 socket calls the heartbeats make, written once.
enum UDP {
    /// An IPv4 address and port (`in_addr_t` in network order, as `inet_addr` gives it).
    static func address(_ ip: in_addr_t, port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        a.sin_addr = in_addr(s_addr: ip)
        return a
    }

    /// One datagram to `target` (a full socket buffer or an unreachable host drops it: a heartbeat is sent again).
    static func send(_ fd: Int32, _ bytes: [UInt8], to target: sockaddr_in) {
        var target = target
        _ = bytes.withUnsafeBytes { b in
            withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
    }
}
