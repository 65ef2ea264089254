import XCTest
import Foundation
import Herd
#if canImport(Glibc)
import Glibc
#endif

/// `herd serve` off loopback: HTTPS with a certificate the test makes with
/// the openssl CLI and checks with curl, cleartext refused without
/// --insecure-http, and slow or many clients (slowloris, a full connection
/// cap) unable to starve a normal client. The release binary, real ports.
final class ServeTLSTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-serve-tls-\(getpid())"
    static let home = dir + "/home"
    static let token = "herd-tls-test-token-0123456789abcdef"

    override class func setUp() {
        prepare {
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            // An empty store: /api/jobs answers {"jobs": []}.
            _ = try JobStore(home: home)
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["HERD_HOME"] = Self.home
        env.removeValue(forKey: "HERD_TOKEN")
        return env
    }

    // MARK: refusals, before anything listens

    func testCleartextOffLoopbackIsRefusedUnlessInsecureHTTP() throws {
        var env = environment
        env["HERD_TOKEN"] = Self.token
        for host in ["0.0.0.0", "192.0.2.7"] {
            let r = try HerdBinary.run(["serve", "--host", host, "--port", "0"], environment: env)
            XCTAssertNotEqual(r.status, 0, "herd serve --host \(host) started in cleartext")
            XCTAssertTrue(r.err.contains("--tls-cert") && r.err.contains("--tls-key") && r.err.contains("--insecure-http"), r.err)
        }
        let server = try ServeProcess(home: Self.home, arguments: ["--host", "0.0.0.0", "--insecure-http"],
                                      environment: ["HERD_TOKEN": Self.token])
        defer { server.stop() }
        XCTAssertEqual(try server.request("/api/jobs").status, 401)
        XCTAssertEqual(try server.request("/api/jobs", headers: ["Authorization": "Bearer \(Self.token)"]).status, 200)
    }

    func testBadTLSFilesAndLimitsAreRefusedNamingTheFlag() throws {
        let pem = try Self.certificate()
        let other = Self.dir + "/other-key.pem"
        try Self.openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", other])
        let garbage = Self.dir + "/garbage.pem"
        try "not a certificate\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let missing = Self.dir + "/nonexistent.pem"
        let cases: [([String], [String])] = [
            (["--tls-cert", pem.cert], ["--tls-cert", "without --tls-key"]),
            (["--tls-key", pem.key], ["--tls-key", "without --tls-cert"]),
            (["--tls-cert", missing, "--tls-key", pem.key], ["--tls-cert \(missing)", "no such file"]),
            (["--tls-cert", pem.cert, "--tls-key", missing], ["--tls-key \(missing)", "no such file"]),
            (["--tls-cert", garbage, "--tls-key", pem.key], ["--tls-cert \(garbage)", "BEGIN CERTIFICATE"]),
            (["--tls-cert", pem.cert, "--tls-key", garbage], ["--tls-key \(garbage)", "PRIVATE KEY"]),
            (["--tls-cert", pem.key, "--tls-key", pem.cert], ["--tls-cert \(pem.key)", "swapped"]),
            (["--tls-cert", Self.dir, "--tls-key", pem.key], ["--tls-cert \(Self.dir)", "directory"]),
            (["--tls-cert", pem.cert, "--tls-key", other], ["--tls-key \(other)", "does not belong", "--tls-cert \(pem.cert)"]),
            (["--tls-cert", pem.cert, "--tls-key", pem.key, "--insecure-http"], ["--insecure-http", "choose one"]),
            (["--read-timeout", "0"], ["--read-timeout", "above 0"]),
            (["--idle-timeout", "0"], ["--idle-timeout", "above 0"]),
            (["--max-connections", "0"], ["--max-connections", "1 to 65536"]),
        ]
        for (args, says) in cases {
            let r = try HerdBinary.run(["serve", "--port", "0"] + args, environment: environment)
            XCTAssertEqual(r.status, 2, "herd serve \(args) exited \(r.status): \(r.out) \(r.err)")
            for s in says { XCTAssertTrue(r.err.contains(s), "herd serve \(args): no \"\(s)\" in: \(r.err)") }
            XCTAssertFalse(r.out.contains("serving"), "herd serve \(args) listened: \(r.out)")
        }
    }

    // MARK: HTTPS

    func testHTTPSWithASelfSignedCertificate() throws {
        let pem = try Self.certificate()
        // Off loopback with a token and TLS: no --insecure-http needed.
        let server = try ServeProcess(home: Self.home, arguments: ["--host", "0.0.0.0", "--tls-cert", pem.cert, "--tls-key", pem.key],
                                      environment: ["HERD_TOKEN": Self.token])
        defer { server.stop() }
        let url = "https://127.0.0.1:\(server.port)/api/jobs"
        let auth = ["-H", "Authorization: Bearer \(Self.token)"]
        let ok = try Self.curl(["--cacert", pem.cert] + auth + [url])
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertEqual(ok.code, 200, ok.body)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ok.body.utf8)) as? [String: Any], ok.body)
        XCTAssertNotNil(json["jobs"] as? [Any], ok.body)
        // The dashboard over HTTPS too, and the token still asked for.
        XCTAssertEqual(try Self.curl(["--cacert", pem.cert] + auth + ["https://127.0.0.1:\(server.port)/"]).code, 200)
        XCTAssertEqual(try Self.curl(["--cacert", pem.cert, url]).code, 401)
        // Without the CA the client refuses the certificate (curl: 60, peer certificate cannot be authenticated).
        let unverified = try Self.curl(auth + [url])
        XCTAssertNotEqual(unverified.status, 0, "curl accepted a self-signed certificate it was not given")
        XCTAssertNotEqual(unverified.code, 200)
        // Cleartext to the TLS port gets no HTTP answer: no status line, never a 200.
        if let plain = try? RawHTTP.request(port: server.port, method: "GET", path: "/api/jobs",
                                            headers: ["Authorization": "Bearer \(Self.token)"], timeout: 15) {
            XCTAssertNotEqual(plain.status, 200, "cleartext HTTP answered on the TLS port: \(plain.text)")
        }
        let plainCurl = try Self.curl(auth + ["http://127.0.0.1:\(server.port)/api/jobs"])
        XCTAssertNotEqual(plainCurl.code, 200, plainCurl.body)
        // The server is still there for the next HTTPS client.
        XCTAssertEqual(try Self.curl(["--cacert", pem.cert] + auth + [url]).code, 200)
    }

    // MARK: slow and many clients

    /// 200 connections trickle a header byte a second and never finish their
    /// head; a normal client is answered all the while, and the server
    /// closes the slow ones at --read-timeout (not before).
    func testSlowlorisDoesNotStarveANormalClient() throws {
        let readTimeout = 3.0
        let server = try ServeProcess(home: Self.home, arguments: ["--read-timeout", "\(Int(readTimeout))"])
        defer { server.stop() }
        let slow = SlowClients(port: server.port, count: 200, seconds: 14)
        slow.start()
        defer { slow.stop() }
        XCTAssertTrue(slow.waitUntilConnected(timeout: 20), "the slow clients did not connect: \(slow.report)")
        for i in 0..<5 {
            let start = Date()
            let a = try RawHTTP.request(port: server.port, method: "GET", path: i % 2 == 0 ? "/api/jobs" : "/", timeout: 20)
            let took = Date().timeIntervalSince(start)
            XCTAssertEqual(a.status, 200, "request \(i) among the slow clients: \(a.status) \(a.text.prefix(200))")
            XCTAssertLessThan(took, 10, "request \(i) waited \(took) s behind slow clients")
            Thread.sleep(forTimeInterval: 0.7)
        }
        XCTAssertTrue(slow.waitUntilAllClosed(timeout: 20), "slow clients still open: \(slow.report)")
        let r = slow.report
        XCTAssertGreaterThanOrEqual(r.closedByServer, 190, "\(r)")
        // Closed at the deadline, not before it (a loaded machine only makes it later).
        XCTAssertGreaterThanOrEqual(r.earliestClose ?? 0, readTimeout - 0.75, "\(r)")
        XCTAssertGreaterThan(r.saw408, 0, "no 408 before closing a half-sent head: \(r)")
        let metrics = try server.request("/metrics").text
        XCTAssertGreaterThanOrEqual(Self.metric(metrics, #"herd_serve_connection_timeouts_total{deadline="read"}"#) ?? 0, 190, metrics)
    }

    /// At --max-connections the server stops accepting; connections that
    /// send nothing are closed at the read timeout, so the cap frees up and
    /// a client waiting in the backlog is served within about one read
    /// timeout. Keep-alive connections left idle are closed at --idle-timeout.
    func testConnectionCapFreesUpWithinTheReadTimeout() throws {
        let readTimeout = 3.0
        let server = try ServeProcess(home: Self.home, arguments: ["--max-connections", "20", "--read-timeout", "\(Int(readTimeout))",
                                                                   "--idle-timeout", "2"])
        defer { server.stop() }
        // A keep-alive connection, answered, then left idle.
        let keepAlive = try RawSocket(port: server.port)
        keepAlive.send("GET /api/jobs HTTP/1.1\r\nHost: herd\r\n\r\n")
        XCTAssertTrue(keepAlive.readUntil(contains: "\"jobs\"", timeout: 15).contains("200 OK"))
        // 30 connections that send nothing: 20 fill the cap, the rest wait in the backlog.
        let idle = try (0..<30).map { _ in try RawSocket(port: server.port) }
        let start = Date()
        let a = try RawHTTP.request(port: server.port, method: "GET", path: "/api/jobs", timeout: 30)
        let waited = Date().timeIntervalSince(start)
        XCTAssertEqual(a.status, 200, a.text)
        XCTAssertLessThan(waited, readTimeout + 12, "a client behind the cap waited \(waited) s")
        // It did wait: the cap held until the silent connections' deadline.
        XCTAssertGreaterThan(waited, 1.0, "a client was accepted at once although the cap was full")
        XCTAssertTrue(keepAlive.waitForEOF(timeout: 15), "an idle keep-alive connection was not closed")
        let closed = idle.filter { $0.waitForEOF(timeout: 15) }.count
        XCTAssertEqual(closed, idle.count, "silent connections still open after their read timeout")
        let metrics = try server.request("/metrics").text
        XCTAssertGreaterThanOrEqual(Self.metric(metrics, "herd_serve_accept_paused_total") ?? 0, 1, metrics)
        XCTAssertGreaterThanOrEqual(Self.metric(metrics, #"herd_serve_connection_timeouts_total{deadline="read"}"#) ?? 0, 30, metrics)
        XCTAssertGreaterThanOrEqual(Self.metric(metrics, #"herd_serve_connection_timeouts_total{deadline="idle"}"#) ?? 0, 1, metrics)
    }

    // MARK: helpers

    /// A self-signed certificate for localhost and 127.0.0.1, made once per run.
    static func certificate() throws -> (cert: String, key: String) {
        let cert = dir + "/cert.pem", key = dir + "/key.pem"
        if FileManager.default.fileExists(atPath: cert) && FileManager.default.fileExists(atPath: key) { return (cert, key) }
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                     "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "1", "-keyout", key, "-out", cert])
        return (cert, key)
    }

    static func tool(_ name: String) throws -> String {
        let path = "/usr/bin/\(name)"
        try HerdTests.require(FileManager.default.isExecutableFile(atPath: path), name, "make test installs it: apt-get install \(name)")
        return path
    }

    static func openssl(_ args: [String]) throws {
        let r = try Spawn.capture(tool("openssl"), args)
        guard r.status == 0 else { throw TestFailure("openssl \(args.joined(separator: " ")): \(r.err)") }
    }

    /// curl's exit status, the HTTP status (0 when there was none) and the body.
    static func curl(_ args: [String]) throws -> (status: Int32, code: Int, body: String, err: String) {
        let r = try Spawn.capture(tool("curl"), ["-sS", "--max-time", "20", "-w", "\n%{http_code}"] + args)
        let lines = r.out.split(separator: "\n", omittingEmptySubsequences: false)
        let code = Int(lines.last ?? "") ?? 0
        return (r.status, code, lines.dropLast().joined(separator: "\n"), r.err)
    }

    /// A sample's value in Prometheus text: the line that starts with `series `.
    static func metric(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}

/// A TCP connection to 127.0.0.1 read and written by hand.
final class RawSocket {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { close(fd); throw POSIXError(.ECONNREFUSED) }
    }

    deinit { close(fd) }

    /// False when the server has closed or reset the connection.
    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    enum Poll { case data(String), eof, nothing }

    /// What is there to read now, without waiting.
    func poll() -> Poll {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        if n > 0 { return .data(String(decoding: buffer[..<n], as: UTF8.self)) }
        if n == 0 { return .eof }
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? .nothing : .eof
    }

    func readUntil(contains needle: String, timeout: Double) -> String {
        var text = ""
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline, !text.contains(needle) {
            switch poll() {
            case .data(let s): text += s
            case .eof: return text
            case .nothing: Thread.sleep(forTimeInterval: 0.02)
            }
        }
        return text
    }

    /// Whether the server closes it within `timeout` (data before the end is read and dropped).
    func waitForEOF(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            switch poll() {
            case .eof: return true
            case .data: continue
            case .nothing: Thread.sleep(forTimeInterval: 0.05)
            }
        }
        return false
    }
}

/// Slowloris on a background thread: `count` connections each send the
/// start of a request head, then one more header byte a second, never the
/// blank line that ends it, for at most `seconds`; each notes when the
/// server closed it and whether a 408 came first.
final class SlowClients: @unchecked Sendable {
    struct Report: CustomStringConvertible {
        var connected = 0, closedByServer = 0, saw408 = 0
        var earliestClose: Double?, latestClose: Double?
        var description: String {
            "connected \(connected), closed by the server \(closedByServer), 408 seen \(saw408), "
                + "closes between \(earliestClose.map { String(format: "%.1f", $0) } ?? "-") and \(latestClose.map { String(format: "%.1f", $0) } ?? "-") s"
        }
    }

    let port: Int, count: Int, seconds: Double
    private let lock = NSLock()
    private var state = Report()
    private var stopped = false
    private var finished = false

    init(port: Int, count: Int, seconds: Double) { self.port = port; self.count = count; self.seconds = seconds }

    var report: Report { lock.lock(); defer { lock.unlock() }; return state }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "slowloris"
        thread.start()
    }

    func stop() { lock.lock(); stopped = true; lock.unlock() }

    private func locked<T>(_ body: (inout Report) -> T) -> T { lock.lock(); defer { lock.unlock() }; return body(&state) }

    private func run() {
        var sockets: [(socket: RawSocket, opened: Date)] = []
        for _ in 0..<count {
            guard let s = try? RawSocket(port: port) else { continue }
            s.send("GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            sockets.append((s, Date()))
        }
        locked { $0.connected = sockets.count }
        var open = Array(sockets.indices)
        var got408 = Set<Int>()
        let end = Date().addingTimeInterval(seconds)
        var nextByte = Date().addingTimeInterval(1)
        while !open.isEmpty, Date() < end, !(lock.withLock { stopped }) {
            let trickle = Date() >= nextByte
            if trickle { nextByte = nextByte.addingTimeInterval(1) }
            open = open.filter { i in
                let (s, opened) = sockets[i]
                var closed = false
                reading: while true {
                    switch s.poll() {
                    case .data(let text): if text.contains(" 408 ") { got408.insert(i) }
                    case .eof: closed = true; break reading
                    case .nothing: break reading
                    }
                }
                if !closed && trickle && !s.send("a") { closed = true }
                if closed {
                    let after = Date().timeIntervalSince(opened)
                    locked {
                        $0.closedByServer += 1
                        $0.earliestClose = min($0.earliestClose ?? after, after)
                        $0.latestClose = max($0.latestClose ?? after, after)
                        $0.saw408 = got408.count
                    }
                }
                return !closed
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        locked { $0.saw408 = got408.count }
        lock.withLock { finished = true }
        withExtendedLifetime(sockets) {}
    }

    func waitUntilConnected(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if report.connected == count { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    /// Until every connection is closed by the server, or the trickling ended.
    func waitUntilAllClosed(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let (r, done) = lock.withLock { (state, finished) }
            if r.closedByServer == r.connected && r.connected > 0 { return true }
            if done { return false }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }
}
