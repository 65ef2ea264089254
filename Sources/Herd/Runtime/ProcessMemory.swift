import Foundation

/// This process's resident memory as the kernel counts it
/// (/proc/self/status): now (`VmRSS`) and its peak (`VmHWM`, the
/// high-water mark). What every rank reports in its heartbeat and the
/// training loop in its events, so that a plan's bytes per rank can be
/// checked against a run.
public struct ProcessMemory: Sendable, Equatable {
    public var residentBytes: Int
    public var peakResidentBytes: Int

    public init(residentBytes: Int, peakResidentBytes: Int) {
        self.residentBytes = residentBytes; self.peakResidentBytes = peakResidentBytes
    }

    /// Now, or nil where /proc is not there to read.
    public static func current() -> ProcessMemory? {
        guard let h = FileHandle(forReadingAtPath: "/proc/self/status") else { return nil }
        defer { try? h.close() }
        // procfs reports a size of 0: read to the end.
        guard let data = try? h.readToEnd() else { return nil }
        return parse(status: String(decoding: data, as: UTF8.self))
    }

    /// The two lines of a /proc/PID/status text ("VmRSS:\t  1234 kB"), or nil.
    public static func parse(status: String) -> ProcessMemory? {
        var rss: Int?, hwm: Int?
        for line in status.split(separator: "\n") {
            if line.hasPrefix("VmRSS:") { rss = kilobytes(line) } else if line.hasPrefix("VmHWM:") { hwm = kilobytes(line) }
        }
        guard let rss, let hwm else { return nil }
        return ProcessMemory(residentBytes: rss, peakResidentBytes: max(hwm, rss))
    }

    static func kilobytes(_ line: Substring) -> Int? {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count == 3, fields[2] == "kB", let v = Int(fields[1]), v >= 0, v <= Int.max / 1024 else { return nil }
        return v * 1024
    }
}
