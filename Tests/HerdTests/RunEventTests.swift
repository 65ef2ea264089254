import Foundation
import XCTest
import Herd

/// events.jsonl: every kind of event, with doubles drawn over their whole
/// range, written and read back equal — bit for bit, on any CPU.
final class RunEventTests: XCTestCase {
    static let kinds: [RunEvent.Kind] = [.start, .resume, .initialized, .step, .eval, .checkpoint, .checkpointFailed, .stopped, .end,
                                         .launch, .restart, .requeue, .shrink, .grow, .cancelled, .succeeded, .failed]

    /// Any finite double: random bits (sign, exponent, mantissa), so
    /// subnormals, huge and tiny magnitudes all come up.
    static func anyDouble<G: RandomNumberGenerator>(_ g: inout G) -> Double {
        while true {
            let d = Double(bitPattern: g.next())
            if d.isFinite { return d }
        }
    }

    static func randomEvent<G: RandomNumberGenerator>(_ g: inout G) -> RunEvent {
        var e = RunEvent(kinds.randomElement(using: &g)!, time: Double.random(in: 1e9...2e9, using: &g))
        func maybe<T>(_ make: () -> T) -> T? { Bool.random(using: &g) ? make() : nil }
        let doubles: [WritableKeyPath<RunEvent, Double?>] = [
            \.beta, \.loss, \.lr, \.gradNorm, \.tokensPerSecond, \.reward, \.kl, \.policyLoss, \.valueLoss, \.clipFraction,
            \.entropy, \.responseLength, \.stepSeconds, \.rolloutSeconds, \.scoringSeconds, \.updateSeconds, \.validationLoss,
            \.accuracy, \.accuracySignificantlyBetter, \.accuracyBetter, \.accuracySlightlyBetter, \.accuracyNegligiblyBetter,
            \.seconds, \.trainLoss, \.trainSeconds, \.backoffSeconds, \.hungAt,
        ]
        for k in doubles { e[keyPath: k] = maybe { anyDouble(&g) } }
        let ints: [WritableKeyPath<RunEvent, Int?>] = [
            \.parameters, \.steps, \.tokensPerStep, \.dataParallel, \.tensorParallel, \.trainTokens, \.validationTokens,
            \.rollouts, \.miniBatch, \.prompts, \.step, \.pairs, \.bytes, \.jobID, \.attempt, \.world, \.data, \.tensor,
            \.restart, \.fromStep, \.checkpointStep, \.bytesFree,
        ]
        for k in ints { e[keyPath: k] = maybe { Int.random(in: Int.min...Int.max, using: &g) } }
        let strings: [WritableKeyPath<RunEvent, String?>] = [
            \.job, \.jobKind, \.checkpoint, \.writtenBy, \.from, \.valueFrom, \.path, \.launcher, \.launchID, \.reason, \.filesystem,
        ]
        let alphabet = Array("ab/\\\"\n\t é×—😀{}[]:,0")
        for k in strings { e[keyPath: k] = maybe { String((0..<Int.random(in: 0...12, using: &g)).map { _ in alphabet.randomElement(using: &g)! }) } }
        e.zero = maybe { Int.random(in: 0...3, using: &g) }
        e.lost = maybe { ["node\(Int.random(in: 1...9, using: &g))"] }
        e.hosts = maybe { ["node1", "node2"] }
        return e
    }

    func testEveryKindRoundTripsExactlyThroughTheLogAndTheTail() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("herd-events-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        let run = RunDirectory(dir)
        try run.create()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var g = SplitMix64(seed: 20261205)
        let written = (0..<3000).map { _ in Self.randomEvent(&g) }
        XCTAssertEqual(Set(written.map(\.event)).count, Self.kinds.count)
        let log = try EventLog(run: run)
        let tail = EventTail(run: run, fromStart: true)
        for e in written { log.write(e) }
        XCTAssertEqual(try run.readEvents(), written)
        XCTAssertEqual(tail.next(), written)
        // Each double also reads back equal one line at a time (what a test failure would name).
        for e in written.prefix(200) { XCTAssertEqual(RunEvent.decode(line: e.line()), e) }
    }

    /// A rank's checkpoint that found no space: its line, read back, is what the coordinator waits on.
    func testACheckpointThatFoundNoSpaceReadsBackAsTheShortageTheCoordinatorWaitsFor() throws {
        let s = NoSpace(file: "/r/checkpoints/step-00000040.tmp/rank-00000.zst", operation: "write", errno: ENOSPC, step: 40,
                        neededBytes: 367_878, estimate: .previousCheckpoint(step: 20), freeBytes: 204_800,
                        filesystem: "the tmpfs filesystem mounted at /r/checkpoints")
        let e = RunEvent.checkpointFailed(s, rank: 1)
        let back = try XCTUnwrap(RunEvent.decode(line: e.line()))
        XCTAssertEqual(back, e)
        XCTAssertEqual(back.event.rawValue, "checkpoint_failed")
        XCTAssertTrue(String(decoding: e.line(), as: UTF8.self).contains("\"bytes_free\":204800"))
        XCTAssertEqual(back.step, 40)
        XCTAssertEqual(back.rank, 1)
        let reason = try XCTUnwrap(back.reason)
        for part in ["checkpoint step-00000040 found no space", "write of /r/checkpoints/step-00000040.tmp/rank-00000.zst failed",
                     "367878 bytes: the size of step-00000020, the previous complete checkpoint", "204800 bytes) are free on the tmpfs"] {
            XCTAssertTrue(reason.contains(part), "\(part) not in: \(reason)")
        }
        XCTAssertEqual(DiskShortage(event: back), DiskShortage(path: s.file, neededBytes: 367_878, freeBytes: 204_800, reason: reason))
        XCTAssertNil(DiskShortage(event: .checkpointWritten(step: 40, path: "/r", bytes: 1, seconds: 1)))
    }

    func testNonFiniteFiguresAreWrittenAsAbsent() throws {
        var e = RunEvent.ended(step: 3, trainLoss: .nan, trainSeconds: .infinity)
        e.validationLoss = -.infinity
        e.tokensPerSecond = 12.5
        let back = try XCTUnwrap(RunEvent.decode(line: e.line()))
        XCTAssertNil(back.trainLoss)
        XCTAssertNil(back.trainSeconds)
        XCTAssertNil(back.validationLoss)
        XCTAssertEqual(back.tokensPerSecond, 12.5)
        XCTAssertEqual(back.step, 3)
    }

    /// Lines as earlier Herd versions wrote them (JSONSerialization: escaped
    /// slashes, flat accuracy keys) and kinds this version does not know still read.
    func testEarlierRunDirectoriesStillRead() throws {
        let old = #"{"event":"checkpoint","path":"\/runs\/x\/checkpoints\/step-00000010","bytes":1024,"seconds":0.25,"step":10,"time":1764900000.5}"#
        let e = try XCTUnwrap(RunEvent.decode(line: Data(old.utf8)))
        XCTAssertEqual(e.event, .checkpoint)
        XCTAssertEqual(e.path, "/runs/x/checkpoints/step-00000010")
        XCTAssertEqual(e.bytes, 1024)
        let eval = #"{"accuracy":0.9,"accuracy_better":0.8,"event":"eval","pairs":96,"step":4,"time":1.0,"val_loss":0.5}"#
        let v = try XCTUnwrap(RunEvent.decode(line: Data(eval.utf8)))
        XCTAssertEqual(v.accuracy(.better), 0.8)
        XCTAssertEqual(v.pairs, 96)
        let future = try XCTUnwrap(RunEvent.decode(line: Data(#"{"event":"rebalanced","time":2.0,"something_new":[1,2]}"#.utf8)))
        XCTAssertEqual(future.event.rawValue, "rebalanced")
        XCTAssertNil(RunEvent.decode(line: Data(#"{"event":"step","step":"#.utf8)), "a torn line is no event")
    }
}
