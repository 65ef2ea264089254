import Foundation

/// The annotator protocol of ../shared/RLHF.md: Herd writes one JSON
/// request a line to the annotator's standard input and reads one answer a
/// line from its standard output.
public enum AnnotatorProtocol {
    public struct CompareRequest: Codable, Sendable {
        public var id: String
        public var task = "compare"
        public var dialogue: [ChatMessage]
        public var responses: [String]
        public init(id: String, dialogue: [ChatMessage], responses: [String]) {
            self.id = id; self.dialogue = dialogue; self.responses = responses
        }
    }

    public struct CompareAnswer: Codable, Sendable {
        public var id: String
        public var chosen: Int
        public var degree: PreferenceDegree
        public var safe: [Bool]
    }

    public struct RateRequest: Codable, Sendable {
        public var id: String
        public var task = "rate"
        public var dialogue: [ChatMessage]
        public var response: String
        public init(id: String, dialogue: [ChatMessage], response: String) {
            self.id = id; self.dialogue = dialogue; self.response = response
        }
    }

    public struct RateAnswer: Codable, Sendable {
        public var id: String
        /// 1–7.
        public var helpfulness: Int
        /// 1–5; 1 or 2 is a violation.
        public var safety: Int
        /// Optional: whether the answer declines to help (counts false
        /// refusals on borderline prompts and refusals of unsafe ones).
        public var refusal: Bool?
        /// Optional: whether the answer keeps the dialogue's standing
        /// instruction (absent when none stands) — Ghost Attention's measure.
        public var instruction: Bool?
        public init(id: String, helpfulness: Int, safety: Int, refusal: Bool? = nil, instruction: Bool? = nil) {
            self.id = id; self.helpfulness = helpfulness; self.safety = safety; self.refusal = refusal; self.instruction = instruction
        }
    }
}

/// What went wrong with the annotator, naming the request it was answering.
public enum AnnotatorError: Error, CustomStringConvertible {
    case notStarted(command: [String], reason: String)
    case exited(request: String, status: Int32)
    case timedOut(request: String, seconds: Double)
    case badAnswer(request: String, line: String, reason: String)

    public var description: String {
        switch self {
        case let .notStarted(c, r): return "annotator \(c.joined(separator: " ")) did not start: \(r)"
        case let .exited(id, s): return "the annotator exited (status \(s)) before answering request \(id)"
        case let .timedOut(id, t): return String(format: "the annotator did not answer request %@ within %.0f s", id, t)
        case let .badAnswer(id, line, why): return "the annotator's answer to request \(id) is not valid: \(why): \(line.prefix(200))"
        }
    }
}

/// A running annotator: an argv (never a shell string), its stdin and
/// stdout as pipes, one request answered at a time within a timeout.
public final class Annotator {
    public let command: [String]
    let process = Process()
    let input = Pipe(), output = Pipe()
    var buffer = Data()

    public init(command: [String]) throws {
        self.command = command
        guard let exe = command.first else { throw AnnotatorError.notStarted(command: command, reason: "the command is empty") }
        let path = exe.contains("/") ? exe : (Spawn.which(exe) ?? exe)
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = Array(command.dropFirst())
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        do { try process.run() } catch { throw AnnotatorError.notStarted(command: command, reason: "\(error)") }
        signal(SIGPIPE, SIG_IGN)   // a dead annotator must be an error, not a signal
    }

    deinit { stop() }

    public func stop() {
        try? input.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
    }

    /// Sends one request and returns the answer's line, or throws naming the request.
    func exchange<Request: Encodable>(_ request: Request, id: String, timeout: Double) throws -> Data {
        var line = try JSONEncoder().encode(request)
        line.append(0x0A)
        let fd = input.fileHandleForWriting.fileDescriptor
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count else { throw AnnotatorError.exited(request: id, status: waitStatus()) }
        let deadline = Date().timeIntervalSince1970 + timeout
        let rfd = output.fileHandleForReading.fileDescriptor
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let answer = buffer[buffer.startIndex..<nl]
                buffer = Data(buffer[(nl + 1)...])
                return Data(answer)
            }
            let left = deadline - Date().timeIntervalSince1970
            guard left > 0 else { throw AnnotatorError.timedOut(request: id, seconds: timeout) }
            var p = pollfd(fd: rfd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, Int32(min(left, 1) * 1000))
            if r < 0 && errno == EINTR { continue }
            if r == 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = read(rfd, &chunk, chunk.count)
            if n <= 0 { throw AnnotatorError.exited(request: id, status: waitStatus()) }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    private func waitStatus() -> Int32 {
        for _ in 0..<50 where process.isRunning { Thread.sleep(forTimeInterval: 0.02) }
        return process.isRunning ? -1 : process.terminationStatus
    }

    func decode<T: Decodable>(_ type: T.Type, _ line: Data, id: String) throws -> T {
        let text = String(decoding: line, as: UTF8.self)
        do { return try JSONDecoder().decode(T.self, from: line) } catch let e as DecodingError {
            throw AnnotatorError.badAnswer(request: id, line: text, reason: JSONLines.describe(e))
        }
    }

    public func compare(_ r: AnnotatorProtocol.CompareRequest, timeout: Double) throws -> AnnotatorProtocol.CompareAnswer {
        let line = try exchange(r, id: r.id, timeout: timeout)
        let a = try decode(AnnotatorProtocol.CompareAnswer.self, line, id: r.id)
        let text = String(decoding: line, as: UTF8.self)
        guard a.id == r.id else { throw AnnotatorError.badAnswer(request: r.id, line: text, reason: "it answers id \"\(a.id)\"") }
        guard a.chosen == 0 || a.chosen == 1 else { throw AnnotatorError.badAnswer(request: r.id, line: text, reason: "chosen must be 0 or 1") }
        guard a.safe.count == 2 else { throw AnnotatorError.badAnswer(request: r.id, line: text, reason: "safe must hold 2 booleans") }
        return a
    }

    public func rate(_ r: AnnotatorProtocol.RateRequest, timeout: Double) throws -> AnnotatorProtocol.RateAnswer {
        let line = try exchange(r, id: r.id, timeout: timeout)
        let a = try decode(AnnotatorProtocol.RateAnswer.self, line, id: r.id)
        let text = String(decoding: line, as: UTF8.self)
        guard a.id == r.id else { throw AnnotatorError.badAnswer(request: r.id, line: text, reason: "it answers id \"\(a.id)\"") }
        guard (1...7).contains(a.helpfulness), (1...5).contains(a.safety) else {
            throw AnnotatorError.badAnswer(request: r.id, line: text, reason: "helpfulness must be 1–7 and safety 1–5")
        }
        return a
    }
}
