import Foundation

/// Where a job's ranks send their heartbeats (RUN/heartbeat-endpoint.json):
/// the coordinator's host, its IPv4 addresses, a UDP port and a nonce that
/// ties each datagram to this endpoint.
public struct HeartbeatAddress: Codable, Sendable, Equatable {
    public var host: String
    public var addresses: [String]
    public var port: Int
    public var nonce: UInt64
    public var pid: Int32

    public static func read(_ run: RunDirectory) -> HeartbeatAddress? {
        guard let data = FileManager.default.contents(atPath: run.heartbeatEndpoint) else { return nil }
        return try? JSONDecoder().decode(HeartbeatAddress.self, from: data)
    }
}

/// The coordinator's end of the heartbeats: a UDP socket, a thread that
/// keeps each rank's newest record and acknowledges it (a rank that hears no
/// acknowledgement falls back to its heartbeat file), and the endpoint file
/// that tells ranks where to send. It replaces reading one file per rank
/// every poll: a datagram a rank a heartbeat, no filesystem metadata at all.
public final class HeartbeatEndpoint: @unchecked Sendable {
    public let address: HeartbeatAddress
    let run: RunDirectory
    private let fd: Int32
    private let lock = NSLock()
    private var table: [Int: HeartbeatRecord] = [:]
    private var closed = false
    private var datagrams = 0
    private let done = DispatchSemaphore(value: 0)

    /// Binds a UDP port on every interface (0: the kernel picks) and writes the endpoint file.
    public init(run: RunDirectory, port: Int = 0) throws {
        self.run = run
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw HeartbeatEndpointError(message: "cannot open a UDP socket: \(String(cString: strerror(errno)))") }
        // Room for a burst: 16,384 ranks beating at once is ~1.6 MB of datagrams.
        var size: Int32 = 8 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = UDP.address(INADDR_ANY, port: port)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else {
            let why = String(cString: strerror(errno))
            Glibc.close(fd)
            throw HeartbeatEndpointError(message: "cannot bind UDP port \(port) for heartbeats: \(why)")
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        var nonce: UInt64 = 0
        // Below 2^53: JSON numbers pass through doubles in some decoders, and the ranks read it from JSON.
        while nonce == 0 { nonce = UInt64.random(in: 1...(1 << 53)) }
        address = HeartbeatAddress(host: ProcessInfo.processInfo.hostName, addresses: Self.interfaceAddresses(),
                                   port: Int(UInt16(bigEndian: addr.sin_port)), nonce: nonce, pid: getpid())
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(address).write(to: URL(fileURLWithPath: run.heartbeatEndpoint), options: .atomic)
        let thread = Thread { [self] in receive() }
        thread.name = "heartbeat-endpoint"
        thread.start()
    }

    /// Every rank's newest record this endpoint received since the last `reset`.
    public func records() -> [Int: HeartbeatRecord] {
        lock.lock(); defer { lock.unlock() }
        return table
    }

    /// Datagrams accepted so far.
    public var received: Int { lock.lock(); defer { lock.unlock() }; return datagrams }

    /// A new attempt: the last one's ranks are forgotten.
    public func reset() { lock.lock(); table = [:]; lock.unlock() }

    /// Stops receiving, and removes the endpoint file if it is still this one's.
    public func close() {
        lock.lock()
        guard !closed else { return lock.unlock() }
        closed = true
        lock.unlock()
        done.wait()
        Glibc.close(fd)
        if HeartbeatAddress.read(run)?.nonce == address.nonce { try? FileManager.default.removeItem(atPath: run.heartbeatEndpoint) }
    }

    deinit { close() }

    private var isClosed: Bool { lock.lock(); defer { lock.unlock() }; return closed }

    private func receive() {
        defer { done.signal() }
        var buffer = [UInt8](repeating: 0, count: 2048)
        var from = sockaddr_in()
        let nonce = address.nonce
        while !isClosed {
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = buffer.withUnsafeMutableBytes { b in
                withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, b.baseAddress, b.count, 0, $0, &len) }
                }
            }
            guard n > 0 else { continue }   // the timeout, so that close() is noticed
            guard let (record, sent) = buffer.withUnsafeBytes({ HeartbeatDatagram.decodeBeat(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }),
                  sent == nonce else { continue }
            lock.lock()
            if (table[record.rank]?.time ?? -.infinity) <= record.time { table[record.rank] = record }
            datagrams += 1
            lock.unlock()
            UDP.send(fd, HeartbeatDatagram.ack(rank: record.rank, nonce: nonce), to: from)
        }
    }

    /// This host's IPv4 addresses other than loopback.
    static func interfaceAddresses() -> [String] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var out: [String] = []
        var p = list
        while let a = p {
            defer { p = a.pointee.ifa_next }
            guard let sa = a.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            var sin = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &sin.sin_addr, &text, socklen_t(INET_ADDRSTRLEN))
            let s = String(cString: text)
            if !s.hasPrefix("127.") { out.append(s) }
        }
        return out
    }
}

public struct HeartbeatEndpointError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}

/// A rank's end: sends each heartbeat to the endpoint the run directory
/// names and listens for acknowledgements. Without one recently (no
/// endpoint, a coordinator gone, a network that drops them) the caller
/// writes its heartbeat file instead, which the coordinator reads for the
/// ranks it does not hear; meanwhile it looks for a new endpoint every few
/// seconds, since a coordinator that adopts the job writes its own.
final class HeartbeatSender {
    let run: RunDirectory
    private let fd: Int32
    private var endpoint: HeartbeatAddress?
    private var target = sockaddr_in()
    private var lastAck = -Double.infinity
    private var lastLookup = -Double.infinity
    static let lookupSeconds = 5.0

    init(run: RunDirectory) {
        self.run = run
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        if fd >= 0 { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Sends `record`; true when the coordinator acknowledged a beat within
    /// `fallbackAfter` seconds (the file need not be written).
    func send(_ record: HeartbeatRecord, now: Double, fallbackAfter: Double) -> Bool {
        guard fd >= 0 else { return false }
        if let e = endpoint {
            var ack = [UInt8](repeating: 0, count: 64)
            while true {
                let n = ack.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { break }
                if ack.withUnsafeBytes({ HeartbeatDatagram.decodeAck(UnsafeRawBufferPointer(rebasing: $0[0..<n]), nonce: e.nonce) }) == record.rank {
                    lastAck = now
                }
            }
        }
        if now - lastAck > fallbackAfter && now - lastLookup > Self.lookupSeconds { lookup(now: now) }
        if let e = endpoint { UDP.send(fd, HeartbeatDatagram.beat(record, nonce: e.nonce), to: target) }
        return now - lastAck <= fallbackAfter
    }

    /// Reads the endpoint file and picks the address to send to: loopback on
    /// the coordinator's own host, else the first address it advertised — an
    /// address, never its name: a name lookup can wait on DNS for seconds,
    /// and this runs on the heartbeat's thread.
    private func lookup(now: Double) {
        lastLookup = now
        guard let e = HeartbeatAddress.read(run) else { endpoint = nil; return }
        if e == endpoint { return }
        let ip = e.host == ProcessInfo.processInfo.hostName ? "127.0.0.1" : e.addresses.first
        guard let ip, inet_addr(ip) != INADDR_NONE else { endpoint = nil; return }
        target = UDP.address(inet_addr(ip), port: e.port)
        endpoint = e
        lastAck = -.infinity
    }
}
