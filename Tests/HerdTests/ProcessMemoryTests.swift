import Foundation
import XCTest
import Herd

/// The resident memory every rank reports: read from the kernel, and
/// moving when the process touches memory.
final class ProcessMemoryTests: XCTestCase {
    func testStatusLinesParseAndBadOnesAreRefused() {
        let status = "Name:\therd\nVmPeak:\t  900000 kB\nVmHWM:\t    52000 kB\nVmRSS:\t    51000 kB\nThreads:\t3\n"
        XCTAssertEqual(ProcessMemory.parse(status: status), ProcessMemory(residentBytes: 51000 * 1024, peakResidentBytes: 52000 * 1024))
        XCTAssertNil(ProcessMemory.parse(status: "VmRSS:\t 12 kB\n"), "no peak line")
        XCTAssertNil(ProcessMemory.parse(status: "VmRSS:\t 12 MB\nVmHWM:\t 12 kB\n"), "another unit")
        XCTAssertNil(ProcessMemory.parse(status: "VmRSS:\t -1 kB\nVmHWM:\t 12 kB\n"))
        XCTAssertNil(ProcessMemory.parse(status: "VmRSS:\t 99999999999999999999 kB\nVmHWM:\t 12 kB\n"))
    }

    func testTouchingMemoryRaisesThePeak() throws {
        let before = try XCTUnwrap(ProcessMemory.current(), "this test needs /proc")
        XCTAssertGreaterThan(before.residentBytes, 1 << 20)
        XCTAssertGreaterThanOrEqual(before.peakResidentBytes, before.residentBytes)
        // 256 MiB written page by page: resident while held, and in the peak after.
        let size = 256 << 20
        let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        for i in stride(from: 0, to: size, by: 4096) { p.storeBytes(of: UInt8(truncatingIfNeeded: i >> 12), toByteOffset: i, as: UInt8.self) }
        let during = try XCTUnwrap(ProcessMemory.current())
        p.deallocate()
        let after = try XCTUnwrap(ProcessMemory.current())
        XCTAssertGreaterThan(during.residentBytes - before.residentBytes, 200 << 20)
        // The kernel batches its counters (a few pages' slack), so the peak is compared with room.
        XCTAssertGreaterThan(after.peakResidentBytes - before.residentBytes, 200 << 20)
        XCTAssertGreaterThanOrEqual(after.peakResidentBytes, before.peakResidentBytes)
    }
}
