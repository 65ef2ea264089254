import XCTest
import Foundation
import Herd

/// Who can reach `herd serve` and what they can read: a token off loopback,
/// 401 without it, no path parameter that leads outside a run directory,
/// bodies limited and checked — and the server still serving afterwards.
/// The job here is a stored record with a run directory on disk (no
/// training needed to read files).
final class ServeAccessTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-serve-access-\(getpid())"
    static let home = dir + "/home"
    static let run = dir + "/run"
    static let secret = "root:x:0:0:herd-secret-marker"
    static var jobID = 0

    override class func setUp() {
        prepare {
            let fm = FileManager.default
            try fm.createDirectory(atPath: run + "/logs/attempt-1/1/rank.0", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: run + "/logs/attempt-1/1/rank.1", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: run + "/checkpoints/step-00000010", withIntermediateDirectories: true)
            try "rank 0 says hello\n".write(toFile: run + "/logs/attempt-1/1/rank.0/stdout", atomically: true, encoding: .utf8)
            try "{}".write(toFile: run + "/checkpoints/step-00000010/manifest.json", atomically: true, encoding: .utf8)
            try "step-00000010\n".write(toFile: run + "/checkpoints/LATEST", atomically: true, encoding: .utf8)
            try (#"{"event":"step","step":1,"loss":3.5,"tokens_per_s":100}"# + "\n" + #"{"event":"step","step":2,"loss":3.25,"tokens_per_s":110}"# + "\n")
                .write(toFile: run + "/events.jsonl", atomically: true, encoding: .utf8)
            // A file outside the run, and a link inside the run that points at it.
            try secret.write(toFile: dir + "/secret.txt", atomically: true, encoding: .utf8)
            try fm.createSymbolicLink(atPath: run + "/logs/attempt-1/1/rank.1/stdout", withDestinationPath: dir + "/secret.txt")
            try fm.createSymbolicLink(atPath: run + "/plan.json", withDestinationPath: dir + "/secret.txt")
            var record = JobRecord(name: "stored", manifest: dir + "/job.yaml", cluster: dir + "/local.yaml", workdir: dir, runDir: run,
                                   launcher: "mpirun", data: 2, tensor: 1, totalSteps: 10, maxRestarts: 0)
            record.state = .failed
            let store = try JobStore(home: home)
            jobID = try store.insert(record)
            try store.update(jobID, ["state": .text("failed"), "attempt": .int(1)])
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testNonLoopbackNeedsAToken() throws {
        var env = ProcessInfo.processInfo.environment
        env["HERD_HOME"] = Self.home
        env.removeValue(forKey: "HERD_TOKEN")
        for host in ["0.0.0.0", "192.0.2.7", "::"] {
            let r = try HerdBinary.run(["serve", "--host", host, "--port", "0"], environment: env)
            XCTAssertEqual(r.status, 2, "herd serve --host \(host) started without a token")
            XCTAssertTrue(r.err.contains("not a loopback address") && r.err.contains("token"), r.err)
        }
        env["HERD_TOKEN"] = "short"
        let short = try HerdBinary.run(["serve", "--host", "0.0.0.0", "--port", "0"], environment: env)
        XCTAssertEqual(short.status, 2)
        XCTAssertTrue(short.err.contains("HERD_TOKEN") && short.err.contains("at least 16"), short.err)
        env.removeValue(forKey: "HERD_TOKEN")
        let missing = try HerdBinary.run(["serve", "--host", "0.0.0.0", "--token-file", Self.dir + "/nonexistent"], environment: env)
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.err.contains("--token-file"), missing.err)
        // With a token (and, without TLS, --insecure-http: ServeTLSTests) it starts on every address, and asks every request for it.
        let token = "herd-test-token-fedcba9876543210"
        let server = try ServeProcess(home: Self.home, arguments: ["--host", "0.0.0.0", "--insecure-http"], environment: ["HERD_TOKEN": token])
        defer { server.stop() }
        XCTAssertEqual(try server.request("/api/jobs").status, 401)
        XCTAssertEqual(try server.request("/api/jobs", headers: ["Authorization": "Bearer \(token)"]).status, 200)
    }

    func testRequestsWithoutTheTokenAreRefused() throws {
        let token = "herd-test-token-0123456789abcdef"
        try token.write(toFile: Self.dir + "/token", atomically: true, encoding: .utf8)
        let server = try ServeProcess(home: Self.home, arguments: ["--token-file", Self.dir + "/token"])
        defer { server.stop() }
        for path in ["/", "/app.js", "/api/jobs", "/api/jobs/\(Self.jobID)", "/metrics", "/api/jobs/\(Self.jobID)/logs/0", "/nope"] {
            let a = try server.request(path)
            XCTAssertEqual(a.status, 401, "\(path) without the token: \(a.status) \(a.text)")
            XCTAssertFalse(a.text.contains("hello"), path)
            XCTAssertEqual(try server.request(path, headers: ["Authorization": "Bearer wrong-token-0123456789"]).status, 401, path)
        }
        XCTAssertEqual(try server.request("/api/jobs", method: "POST", body: Data("{}".utf8)).status, 401)
        XCTAssertEqual(try server.request("/api/jobs", headers: ["Authorization": "Bearer \(token)"]).status, 200)
        // A browser opens /?token=… once and gets a cookie for the rest.
        let page = try server.request("/?token=\(token)")
        XCTAssertEqual(page.status, 200)
        let cookie = try XCTUnwrap(page.headers["set-cookie"], "no cookie set")
        XCTAssertTrue(cookie.contains("HttpOnly"), cookie)
        let pair = String(cookie.split(separator: ";")[0])
        XCTAssertEqual(try server.request("/api/jobs/\(Self.jobID)/logs/0", headers: ["Cookie": pair]).status, 200)
        XCTAssertEqual(try server.request("/api/jobs", headers: ["Cookie": "herd_token=nope"]).status, 401)
    }

    func testNoPathParameterReachesOutsideTheRunDirectory() throws {
        let server = try ServeProcess(home: Self.home)
        defer { server.stop() }
        let id = Self.jobID
        // The honest requests work...
        XCTAssertTrue(try server.request("/api/jobs/\(id)/logs/0").text.contains("rank 0 says hello"))
        XCTAssertEqual(try server.request("/api/jobs/\(id)/checkpoints/step-00000010").status, 200)
        XCTAssertEqual(try server.request("/api/jobs/\(id)/events?offset=0").status, 200)
        // ...and every way out is refused with a 4xx and nothing of the file.
        let escapes = ["..", "../..", "../../../../etc/passwd", "/etc/passwd", "%2e%2e", "%2E%2E%2F%2E%2E", "..%2f..%2fsecret.txt",
                       "%2fetc%2fpasswd", "%252e%252e%252f", "..%5c..%5c", "..\\..\\", "%c0%ae%c0%ae", ".%2e", "0/../../secret.txt",
                       "0%00", "%00", "-1", "1e3", "0x1", " 0", "99999999999999999999999"]
        var tried = 0
        func refused(_ path: String, line: UInt = #line) throws {
            let a = try server.request(path)
            tried += 1
            XCTAssertTrue((400..<500).contains(a.status), "\(path) → \(a.status): \(a.text)", line: line)
            XCTAssertFalse(a.text.contains("herd-secret-marker"), "\(path) leaked the file", line: line)
            XCTAssertFalse(a.text.contains("root:x:0"), "\(path) leaked /etc/passwd", line: line)
        }
        for e in escapes {
            try refused("/api/jobs/\(e)")                                     // job id
            try refused("/api/jobs/\(e)/logs/0")
            try refused("/api/jobs/\(id)/logs/\(e)")                          // rank
            try refused("/api/jobs/\(id)/logs/0?attempt=\(e)")                // attempt
            try refused("/api/jobs/\(id)/logs/0?stream=\(e)")                 // stream
            try refused("/api/jobs/\(id)/logs/0?offset=\(e)")
            try refused("/api/jobs/\(id)/checkpoints/\(e)")                   // checkpoint name
            try refused("/api/jobs/\(id)/checkpoints/step-\(e)")
            try refused("/api/jobs/\(id)/events?offset=\(e)")
            try refused("/api/pipelines/\(e)")                                // pipeline name
            try refused("/api/pipelines/\(e)/report")
        }
        // Links inside the run that point outside it are not followed.
        try refused("/api/jobs/\(id)/logs/1")
        try refused("/api/jobs/\(id)/plan")
        // A rank outside the job's world, an attempt it never had.
        try refused("/api/jobs/\(id)/logs/2")
        try refused("/api/jobs/\(id)/logs/0?attempt=2")
        print("ServeAccessTests: \(tried) escaping requests refused")
        XCTAssertEqual(try server.request("/api/jobs").status, 200, "the server stopped serving")
    }

    func testEventPagesAreWholeLinesFromAnyOffset() throws {
        let server = try ServeProcess(home: Self.home)
        defer { server.stop() }
        let size = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: Self.run + "/events.jsonl")[.size] as? Int)
        func page(_ query: String) throws -> (steps: [Int], next: Int) {
            let o = try server.json("/api/jobs/\(Self.jobID)/events?\(query)")
            return ((o["events"] as? [[String: Any]] ?? []).compactMap { $0["step"] as? Int }, o["next"] as? Int ?? -1)
        }
        let all = try page("offset=0")
        XCTAssertEqual(all.steps, [1, 2])
        XCTAssertEqual(all.next, size)
        let first = try page("offset=0&limit=1")
        XCTAssertEqual(first.steps, [1])
        XCTAssertEqual(try page("offset=\(first.next)").steps, [2])
        XCTAssertEqual(try page("offset=3").steps, [2], "an offset inside a line starts at the next line")
        XCTAssertEqual(try page("offset=\(size)").steps, [])
        XCTAssertEqual(try page("offset=\(size + 1000)").next, size)
        XCTAssertEqual(try page("since=1").steps, [2])
    }

    func testBadBodiesGetA4xxAndTheServerKeepsServing() throws {
        let server = try ServeProcess(home: Self.home, arguments: ["--max-body-bytes", "65536"])
        defer { server.stop() }
        let big = Data(repeating: UInt8(ascii: "a"), count: 3 << 20)
        let declared = try server.request("/api/jobs", method: "POST", body: big)
        XCTAssertEqual(declared.status, 413, declared.text)
        let streamed = try RawHTTP.request(port: server.port, method: "POST", path: "/api/jobs", body: big, chunked: true)
        XCTAssertEqual(streamed.status, 413, streamed.text)
        for (body, expect) in [("not json", "not a JSON object"), ("[1, 2]", "not a JSON object"), ("", "needs a JSON object"),
                               (#"{"manifest": 5}"#, "field manifest"), (#"{"cluster": "x"}"#, "field manifest: required"),
                               (#"{"manifest": "a: b", "color": "red"}"#, "field color: unknown"),
                               (#"{"manifest": "kind: pretrain", "cluster_name": "../../etc/passwd"}"#, "field cluster_name"),
                               (#"{"manifest": "kind: pretrain\nsteps: -4\n", "cluster_name": "local", "steps": 1.5}"#, "field steps")] {
            let a = try server.request("/api/jobs", method: "POST", headers: ["Content-Type": "application/json"], body: Data(body.utf8))
            XCTAssertEqual(a.status, 400, "\(body): \(a.text)")
            XCTAssertTrue(a.text.contains(expect), "\(body): \(a.text)")
        }
        // A manifest that does not validate: the error names the field, as the CLI's does.
        let manifest = "kind: pretrain\nmodel: {preset: tiny-gqa}\ndata: {corpus: \(Self.dir)/secret.txt, tokenizer: byte, seq_len: 16}\nbatch: {sequences: 4}\noptimizer: {lr: -1}\nsteps: 5\n"
        let cluster = "name: local\nlauncher: mpirun\nnodes:\n  - {hosts: [localhost], slots: 2, cores: 2, memory_gb: 16, peak_tflops: 0.1}\n"
        let bad = try server.request("/api/jobs", method: "POST", body: try JSONSerialization.data(withJSONObject: ["manifest": manifest, "cluster": cluster]))
        XCTAssertEqual(bad.status, 400, bad.text)
        XCTAssertTrue(bad.text.contains("optimizer.lr"), bad.text)
        XCTAssertEqual(try JobStore(home: Self.home).jobs().count, 1, "a refused submission was stored")
        // Operations on a job in the wrong state: 409 with the reason.
        let cancel = try server.request("/api/jobs/\(Self.jobID)/cancel", method: "POST")
        XCTAssertEqual(cancel.status, 409, cancel.text)
        XCTAssertTrue(cancel.text.contains("already ended"), cancel.text)
        let resume = try server.request("/api/jobs/\(Self.jobID)/resume", method: "POST", body: Data(#"{"data": 0}"#.utf8))
        XCTAssertEqual(resume.status, 400, resume.text)
        XCTAssertTrue(resume.text.contains("field data"), resume.text)
        for cluster in ["../../etc/passwd", "/etc/passwd", "x.yaml", ".hidden", "a/b"] {
            let r = try server.request("/api/jobs/\(Self.jobID)/resume", method: "POST",
                                       body: try JSONSerialization.data(withJSONObject: ["cluster": cluster]))
            XCTAssertEqual(r.status, 400, "\(cluster): \(r.text)")
            XCTAssertTrue(r.text.contains("field cluster: expected the name of a cluster"), r.text)
        }
        XCTAssertEqual(try server.request("/api/jobs/\(Self.jobID)/events?limit=0", method: "GET").status, 400)
        XCTAssertEqual(try server.request("/api/jobs", method: "DELETE").status / 100, 4)
        XCTAssertEqual(try server.request("/api/jobs").status, 200, "the server stopped serving")
        XCTAssertTrue(server.process.isRunning)
    }
}
