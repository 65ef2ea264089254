import XCTest
import Foundation
import Herd
#if canImport(Glibc)
import Glibc
#endif

/// `herd serve` started as a user starts it (the release binary, a real
/// port), and stopped with SIGTERM.
final class ServeProcess {
    let process: Process
    let port: Int
    let output: Pipe

    init(home: String, arguments: [String] = [], environment extra: [String: String] = [:]) throws {
        var env = ProcessInfo.processInfo.environment
        env["HERD_HOME"] = home
        env.removeValue(forKey: "HERD_TOKEN")
        for (k, v) in extra { env[k] = v }
        let s = try HerdBinary.start(["serve", "--port", "0"] + arguments, environment: env)
        process = s.process
        output = s.out
        // The first line says where it listens (port 0: the kernel chose), http:// or https://.
        var text = ""
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, !text.contains("serving http://"), !text.contains("serving https://") {
            let chunk = s.out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let r = text.range(of: #"serving https?://[^ ]*:(\d+)/"#, options: .regularExpression),
              let p = Int(text[r].split(separator: ":").last!.dropLast()) else {
            process.terminate()
            let err = String(decoding: s.err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            // A server that does not start is a failure of what these tests test, never a skip.
            throw ServeDidNotStart(description: "herd serve did not start: \(text) \(err)")
        }
        port = p
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }

    func request(_ path: String, method: String = "GET", headers: [String: String] = [:], body: Data? = nil) throws -> RawHTTP.Answer {
        try RawHTTP.request(port: port, method: method, path: path, headers: headers, body: body)
    }

    func json(_ path: String, headers: [String: String] = [:]) throws -> [String: Any] {
        let a = try request(path, headers: headers)
        XCTAssertEqual(a.status, 200, "\(path): \(a.text)")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: a.body) as? [String: Any], a.text)
    }
}

/// HTTP/1.1 over a plain socket: the request line goes out exactly as
/// written (URLSession and curl would normalise `..` and some escapes away).
enum RawHTTP {
    struct Answer {
        var status: Int
        var headers: [String: String]
        var body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    static func request(port: Int, method: String, path: String, headers: [String: String] = [:], body: Data? = nil,
                        chunked: Bool = false, timeout: Double = 30) throws -> Answer {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { throw POSIXError(.ECONNREFUSED) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        var payload = Data()
        if let body {
            if chunked {
                head += "Transfer-Encoding: chunked\r\n\r\n"
                var i = 0
                while i < body.count {
                    let part = body[i..<min(body.count, i + 65536)]
                    payload.append(Data((String(part.count, radix: 16) + "\r\n").utf8)); payload.append(part); payload.append(Data("\r\n".utf8))
                    i += part.count
                }
                payload.append(Data("0\r\n\r\n".utf8))
            } else {
                head += "Content-Length: \(body.count)\r\n\r\n"
                payload = body
            }
        } else {
            head += "\r\n"
        }
        var all = Data(head.utf8)
        all.append(payload)
        // The server may answer (413) and close before taking the whole body: stop sending then.
        _ = all.withUnsafeBytes { raw -> Int in
            var sent = 0
            while sent < raw.count {
                let n = send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                if n <= 0 { break }
                sent += n
            }
            return sent
        }
        var response = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            response.append(buffer, count: n)
        }
        guard let split = response.range(of: Data("\r\n\r\n".utf8)) else { throw POSIXError(.EBADMSG) }
        let lines = String(decoding: response[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var fields: [String: String] = [:]
        for l in lines.dropFirst() {
            if let c = l.firstIndex(of: ":") { fields[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces) }
        }
        var payloadOut = Data(response[split.upperBound...])
        if fields["transfer-encoding"]?.lowercased() == "chunked" { payloadOut = dechunk(payloadOut) }
        return Answer(status: status, headers: fields, body: payloadOut)
    }

    static func dechunk(_ data: Data) -> Data {
        var out = Data(), rest = data[...]
        while let nl = rest.range(of: Data("\r\n".utf8)) {
            guard let size = Int(String(decoding: rest[..<nl.lowerBound], as: UTF8.self).split(separator: ";").first ?? "", radix: 16), size > 0 else { break }
            let start = nl.upperBound
            guard rest.distance(from: start, to: rest.endIndex) >= size else { break }
            let end = rest.index(start, offsetBy: size)
            out.append(rest[start..<end])
            rest = rest[(rest.index(end, offsetBy: 2, limitedBy: rest.endIndex) ?? rest.endIndex)...]
        }
        return out
    }

    /// A port nothing listens on now (the kernel's pick, released).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// Debian's Chromium, headless, as ../shared/recipes/browser-test.md runs it.
enum Chromium {
    static let path = "/usr/bin/chromium"

    static func require(file: StaticString = #file, line: UInt = #line) throws {
        try HerdTests.require(FileManager.default.isExecutableFile(atPath: path), "chromium", "make test installs it: apt-get install chromium",
                              file: file, line: line)
    }

    static func run(_ args: [String], budget: Int) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                       "--virtual-time-budget=\(budget)"] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "chromium \(args)")
        return String(decoding: data, as: UTF8.self)
    }

    /// The page's DOM once its scripts have run for `budget` ms of virtual time.
    static func dom(_ url: String, budget: Int = 2500) throws -> String { try run(["--dump-dom", url], budget: budget) }

    static func screenshot(_ url: String, to file: String, size: String = "1300,1500", budget: Int = 2500) throws {
        try? FileManager.default.removeItem(atPath: file)
        _ = try run(["--window-size=\(size)", "--screenshot=\(file)", url], budget: budget)
        XCTAssertTrue(FileManager.default.fileExists(atPath: file), "no screenshot at \(file)")
    }
}

/// Where tests leave what a person should look at (screenshots): test-output/ in the package.
enum TestOutput {
    static func directory(_ name: String) throws -> String {
        let dir = FileManager.default.currentDirectoryPath + "/test-output/\(name)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// Small readers of the dashboard's DOM (the elements carry data- attributes for this).
enum DOM {
    /// data-points of the training-loss polyline, or 0.
    static func lossPoints(_ dom: String) -> Int {
        guard let r = dom.range(of: #"data-name="training loss" data-points="(\d+)""#, options: .regularExpression) else { return 0 }
        return Int(dom[r].split(separator: "\"")[3]) ?? 0
    }

    static func rankStatus(_ dom: String, rank: Int) -> String? {
        guard let r = dom.range(of: #"data-rank="\#(rank)" data-status="([a-z]+)""#, options: .regularExpression) else { return nil }
        return String(dom[r].split(separator: "\"")[3])
    }
}

struct ServeDidNotStart: Error, CustomStringConvertible {
    var description: String
}
