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
