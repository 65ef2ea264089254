import XCTest
import Foundation
import Herd

/// Heartbeats as datagrams: the format round-trips exactly and refuses
/// anything else without crashing; a real rank's Heartbeat reaches a real
/// endpoint over UDP and stops writing its file while acknowledged, and
/// falls back to the file when the endpoint goes away; the coordinator's
/// collector reads a file only for a rank it does not hear; the store is
/// written only when something changed.
final class HeartbeatTransportTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "herd-heartbeat-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testDatagramRoundTripsAndRefusesMalformedInput() {
        let r = HeartbeatRecord(rank: 16383, host: "node-17.cluster", pid: 4242, step: 123_456, phase: "checkpoint",
                                time: 1_765_000_000.123456, progressTime: 1_765_000_000.5, residentBytes: 3 << 30, peakResidentBytes: nil)
        let bytes = HeartbeatDatagram.beat(r, nonce: 99)
        XCTAssertLessThanOrEqual(bytes.count, HeartbeatDatagram.maximumBytes)
        let decoded = bytes.withUnsafeBytes { HeartbeatDatagram.decodeBeat($0) }
        XCTAssertEqual(decoded?.0, r)
        XCTAssertEqual(decoded?.nonce, 99)
        let ack = HeartbeatDatagram.ack(rank: 7, nonce: 99)
        XCTAssertEqual(ack.withUnsafeBytes { HeartbeatDatagram.decodeAck($0, nonce: 99) }, 7)
        XCTAssertNil(ack.withUnsafeBytes { HeartbeatDatagram.decodeAck($0, nonce: 98) })
        // Every truncation, and random bytes behind a valid magic: refused or decoded, never a crash.
        for n in 0..<bytes.count {
            XCTAssertNil(Array(bytes[0..<n]).withUnsafeBytes { HeartbeatDatagram.decodeBeat($0) }, "truncated to \(n) bytes")
        }
        var g = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            var junk = Array("HBT1".utf8) + (0..<Int.random(in: 0...120, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }
            if Bool.random(using: &g) { junk[Int.random(in: 0..<junk.count, using: &g)] ^= 0xff }
            _ = junk.withUnsafeBytes { HeartbeatDatagram.decodeBeat($0) }
            _ = junk.withUnsafeBytes { HeartbeatDatagram.decodeAck($0, nonce: 1) }
        }
    }

    func testRankBeatsOverUDPWhileAcknowledgedAndFallsBackToItsFile() throws {
        let run = RunDirectory(dir + "/run")
        try run.create()
        let endpoint = try HeartbeatEndpoint(run: run)
        let beat = try Heartbeat(run: run.root, rank: 3, interval: 0.1)
        let written = try XCTUnwrap(HeartbeatRecord.read(run: run.root, rank: 3)).time
        var heard: HeartbeatRecord?
        let until = Date().addingTimeInterval(5)
        while heard == nil && Date() < until { heard = endpoint.records()[3]; usleep(20_000) }
        XCTAssertEqual(heard?.pid, getpid())
        XCTAssertGreaterThan(endpoint.received, 0)
        beat.progress(step: 11, phase: "train")
        Thread.sleep(forTimeInterval: 1.5)
        XCTAssertEqual(endpoint.records()[3]?.step, 11)
        // Acknowledged: after its first beat or two, the rank leaves its file alone.
        let file = try XCTUnwrap(HeartbeatRecord.read(run: run.root, rank: 3))
        XCTAssertLessThan(file.time - written, 0.5, "the file was rewritten while the endpoint acknowledged every beat")

        // The coordinator reads the file only for a rank it has not heard.
        let collector = HeartbeatCollector(run: run.root, endpoint: endpoint, fileAfter: 0.5)
        XCTAssertEqual(collector.collect(world: 5).map(\.rank), [3])
        XCTAssertEqual(collector.filesRead, 4)

        // The endpoint gone (its coordinator killed): within the fallback time the file is fresh again.
        endpoint.close()
        XCTAssertNil(HeartbeatAddress.read(run))
        let closed = Date().timeIntervalSince1970
        var fresh = false
        while !fresh && Date().timeIntervalSince1970 < closed + 5 {
            fresh = (HeartbeatRecord.read(run: run.root, rank: 3)?.time ?? 0) > closed
            usleep(50_000)
        }
        XCTAssertTrue(fresh, "no heartbeat file after the endpoint went away")
        // A new endpoint (a coordinator that adopts the job): the rank finds it and beats there.
        let adopted = try HeartbeatEndpoint(run: run)
        let until2 = Date().addingTimeInterval(10)   // ranks look for a new endpoint every 5 s
        while adopted.records()[3] == nil && Date() < until2 { usleep(50_000) }
        XCTAssertNotNil(adopted.records()[3], "the rank never found the new endpoint")
        beat.stop(phase: "done")
        adopted.close()
    }

    func testStoreIsWrittenOnlyWhenSomethingChanged() throws {
        let store = try JobStore(home: dir + "/home")
        let id = try store.insert(JobRecord(name: "w", manifest: "-", cluster: "-", workdir: dir, runDir: dir, launcher: "mpirun",
                                            data: 2, tensor: 1, totalSteps: 1, maxRestarts: 0))
        let publisher = WorkerPublisher(store: store, jobID: id, refresh: 1)
        func beats(_ t: Double, step: Int) -> [HeartbeatRecord] {
            (0..<2).map { HeartbeatRecord(rank: $0, host: "h", pid: 10 + Int32($0), step: step, phase: "train", time: t, progressTime: t) }
        }
        try publisher.publish(beats(100, step: 1))
        XCTAssertEqual(publisher.rowsWritten, 2)
        try publisher.publish(beats(100.5, step: 1))
        XCTAssertEqual(publisher.rowsWritten, 0, "a fresher heartbeat within the refresh was written")
        XCTAssertEqual(try store.workers(id).map(\.heartbeat), [100, 100])
        try publisher.publish(beats(100.6, step: 2))
        XCTAssertEqual(publisher.rowsWritten, 2)
        try publisher.publish(beats(101.7, step: 2))
        XCTAssertEqual(publisher.rowsWritten, 2)
        XCTAssertEqual(try store.workers(id).map(\.heartbeat), [101.7, 101.7])
    }
}
