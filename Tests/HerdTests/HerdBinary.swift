import XCTest
import Foundation

/// The release `herd` binary that `make test` builds, run as a user runs it.
enum HerdBinary {
    static let path = ".build/release/herd"

    static func run(_ args: [String], environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
        let p = try start(args, environment: environment)
        let o = p.out.fileHandleForReading.readDataToEndOfFile(), e = p.err.fileHandleForReading.readDataToEndOfFile()
        p.process.waitUntilExit()
        return (p.process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// DIR/corpus.txt: 120k characters of Shakespeare (or a stand-in when
    /// ../shared is absent), the text the multi-process tests train on.
    static func writeCorpus(in dir: String) {
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let text = (try? String(contentsOfFile: "../shared/data/tinyshakespeare.txt", encoding: .utf8))
            ?? String(repeating: "Now is the winter of our discontent made glorious summer by this sun of York.\n", count: 800)
        try? String(text.prefix(120_000)).write(toFile: dir + "/corpus.txt", atomically: true, encoding: .utf8)
    }

    static func start(_ args: [String], environment: [String: String]? = nil) throws -> (process: Process, out: Pipe, err: Pipe) {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: path), "build \(path) first (make test does)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }
}
