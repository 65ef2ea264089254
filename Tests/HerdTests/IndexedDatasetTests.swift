import XCTest
import Foundation
import Herd

/// Megatron-LM's indexed datasets (.bin + .idx): round trips, spans, merges,
/// atomic publication, refusal of every kind of damaged index naming the
/// file, a fuzz of mutated indexes, and byte-for-byte interop with
/// megatron-core itself (skipped when it is not installed).
final class IndexedDatasetTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "herd-indexed-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Random documents, some empty, with tokens below `bound`.
    static func documents<G: RandomNumberGenerator>(_ n: Int, maxLength: Int, bound: Int32, _ g: inout G) -> [[Int32]] {
        (0..<n).map { _ in
            Int.random(in: 0..<6, using: &g) == 0 ? [] : (0..<Int.random(in: 1...maxLength, using: &g)).map { _ in Int32.random(in: 0..<bound, using: &g) }
        }
    }

    @discardableResult
    func write(_ docs: [[Int32]], _ prefix: String, _ dtype: IndexedDType) throws -> IndexedDatasetWriter {
        let w = try IndexedDatasetWriter(prefix: prefix, dtype: dtype)
        for d in docs { try w.addDocument(d) }
        try w.finish()
        return w
    }

    func assertHolds(_ r: IndexedDatasetReader, _ docs: [[Int32]], file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(r.documentCount, docs.count, file: file, line: line)
        XCTAssertEqual(r.sequenceCount, docs.count, file: file, line: line)
        XCTAssertEqual(r.tokenCount, docs.reduce(0) { $0 + $1.count }, file: file, line: line)
        var start = 0
        for (i, d) in docs.enumerated() {
            XCTAssertEqual(r.documentSequences(i), i..<(i + 1), file: file, line: line)
            XCTAssertEqual(r.sequenceLength(i), d.count, file: file, line: line)
            XCTAssertEqual(r.sequenceStart(i), start, file: file, line: line)
            XCTAssertEqual(try r.sequence(i), d, "document \(i)", file: file, line: line)
            start += d.count
        }
        XCTAssertEqual(r.sequenceStart(r.sequenceCount), r.tokenCount, file: file, line: line)
    }

    func testRoundTripUInt16AndInt32() throws {
        var g = SplitMix64(seed: 11)
        for (dtype, bound) in [(IndexedDType.uint16, Int32(65_536)), (.int32, Int32.max)] {
            let docs = Self.documents(300, maxLength: 700, bound: bound, &g) + [[0, bound - 1], []]
            let prefix = "\(dir)/rt-\(dtype.name)"
            let w = try write(docs, prefix, dtype)
            XCTAssertEqual(w.documents, docs.count)
            XCTAssertEqual(w.tokens, docs.reduce(0) { $0 + $1.count })
            XCTAssertEqual(w.binBytes, w.tokens * dtype.byteSize)
            XCTAssertEqual(w.binChecksum, Checksum64.ofFile(prefix + ".bin")?.hex)
            XCTAssertEqual(w.idxChecksum, Checksum64.ofFile(prefix + ".idx")?.hex)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("rt-\(dtype.name)") }.sorted(),
                           ["rt-\(dtype.name).bin", "rt-\(dtype.name).idx"], "no temporary or spool files are left")
            // By prefix and by the name of either file.
            for name in [prefix, prefix + ".bin", prefix + ".idx"] {
                let r = try IndexedDatasetReader(prefix: name)
                XCTAssertEqual(r.dtype, dtype)
                XCTAssertEqual(r.prefix, prefix)
                try assertHolds(r, docs)
            }
        }
        // The empty dataset.
        try write([], "\(dir)/empty", .uint16)
        let r = try IndexedDatasetReader(prefix: "\(dir)/empty")
        XCTAssertEqual([r.sequenceCount, r.documentCount, r.tokenCount], [0, 0, 0])
    }

    func testOptimalDTypeIsMegatrons() {
        XCTAssertEqual(IndexedDType.optimal(vocabSize: 32_000), .uint16)
        XCTAssertEqual(IndexedDType.optimal(vocabSize: 65_499), .uint16)
        XCTAssertEqual(IndexedDType.optimal(vocabSize: 65_500), .int32)
        XCTAssertEqual(IndexedDType.optimal(vocabSize: 128_256), .int32)
        XCTAssertEqual(IndexedDType.allCases.map(\.byteSize), [1, 1, 2, 4, 8, 8, 4, 2])
    }

    func testSpansCrossDocuments() throws {
        var g = SplitMix64(seed: 12)
        for dtype in [IndexedDType.uint16, .int32] {
            let docs = Self.documents(200, maxLength: 300, bound: 60_000, &g)
            try write(docs, "\(dir)/spans", dtype)
            let r = try IndexedDatasetReader(prefix: "\(dir)/spans")
            let all = docs.flatMap { $0 }
            var out = [Int32](repeating: -1, count: 80_000)
            for _ in 0..<300 {
                let count = Int.random(in: 0...min(all.count, 70_000), using: &g)   // beyond one 32 Ki chunk too
                let offset = Int.random(in: 0...(all.count - count), using: &g)
                try out.withUnsafeMutableBufferPointer { try r.read(tokenOffset: offset, count: count, into: $0.baseAddress!) }
                XCTAssertEqual(Array(out[0..<count]), Array(all[offset..<(offset + count)]))
            }
            try out.withUnsafeMutableBufferPointer { p in
                for (o, c) in [(-1, 1), (0, all.count + 1), (all.count, 1), (1, -1), (Int.max, 2), (2, Int.max)] {
                    XCTAssertThrowsError(try r.read(tokenOffset: o, count: c, into: p.baseAddress!)) { e in
                        XCTAssertEqual((e as? IndexedDatasetError)?.file, "\(dir)/spans.bin")
                    }
                }
                try r.read(tokenOffset: all.count, count: 0, into: p.baseAddress!)
            }
            XCTAssertThrowsError(try r.sequence(docs.count))
        }
    }

    func testConcurrentReadsAgree() throws {
        var g = SplitMix64(seed: 13)
        let docs = Self.documents(400, maxLength: 500, bound: 65_536, &g)
        try write(docs, "\(dir)/conc", .uint16)
        let r = try IndexedDatasetReader(prefix: "\(dir)/conc")
        let all = docs.flatMap { $0 }
        let failures = FailureCount()
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            var g = SplitMix64(seed: UInt64(t))
            var out = [Int32](repeating: 0, count: 1000)
            for _ in 0..<200 {
                let offset = Int.random(in: 0...(all.count - 1000), using: &g)
                try? out.withUnsafeMutableBufferPointer { try r.read(tokenOffset: offset, count: 1000, into: $0.baseAddress!) }
                if out[...] != all[offset..<(offset + 1000)] { failures.add() }
            }
        }
        XCTAssertEqual(failures.value, 0)
    }

    func testTokensThatDoNotFitAreRefusedAndLeaveTheDatasetAsItWas() throws {
        let w = try IndexedDatasetWriter(prefix: "\(dir)/fit", dtype: .uint16)
        try w.addDocument([1, 2, 3])
        for bad: [Int32] in [[5, 65_536], [-1], [Int32.max]] {
            XCTAssertThrowsError(try w.addDocument(bad)) { e in
                let m = "\(e)"
                XCTAssertTrue(m.contains("\(bad.last!)") && m.contains("uint16") && m.contains("fit.bin.tmp"), m)
            }
        }
        try w.addDocument([65_535])
        try w.finish()
        try assertHolds(try IndexedDatasetReader(prefix: "\(dir)/fit"), [[1, 2, 3], [65_535]])
        XCTAssertThrowsError(try w.addDocument([1]), "finished")
        XCTAssertThrowsError(try w.finish(), "finished twice")
        XCTAssertThrowsError(try IndexedDatasetWriter(prefix: "\(dir)/f", dtype: .float32)) { e in
            XCTAssertTrue("\(e)".contains("float32"), "\(e)")
        }
    }

    /// Merging per-rank parts: every other document of two parts, then a
    /// part with Megatron's multi-sequence and sequence-less documents,
    /// whose structure is kept.
    func testMergeKeepsEveryOtherDocument() throws {
        var g = SplitMix64(seed: 14)
        let a = Self.documents(150, maxLength: 400, bound: 65_536, &g), b = Self.documents(90, maxLength: 400, bound: 65_536, &g)
        try write(a, "\(dir)/part-0", .uint16)
        try write(b, "\(dir)/part-1", .uint16)
        let merged = try IndexedDatasetWriter(prefix: "\(dir)/merged", dtype: .uint16)
        try merged.addDocuments(from: try IndexedDatasetReader(prefix: "\(dir)/part-0"), where: { $0 % 2 == 0 })
        try merged.addDocument([7, 7, 7])
        try merged.addDocuments(from: try IndexedDatasetReader(prefix: "\(dir)/part-1"), where: { $0 % 2 == 1 })
        try merged.addDocuments(from: try IndexedDatasetReader(prefix: "\(dir)/part-1"), where: { _ in true })
        try merged.finish()
        let expected = a.enumerated().filter { $0.offset % 2 == 0 }.map(\.element) + [[7, 7, 7]]
            + b.enumerated().filter { $0.offset % 2 == 1 }.map(\.element) + b
        try assertHolds(try IndexedDatasetReader(prefix: "\(dir)/merged"), expected)
        XCTAssertEqual(merged.documents, expected.count)
        XCTAssertEqual(merged.tokens, expected.reduce(0) { $0 + $1.count })
        // Copying a whole dataset gives the same bytes as writing it.
        let copy = try IndexedDatasetWriter(prefix: "\(dir)/copy", dtype: .uint16)
        try copy.addDocuments(from: try IndexedDatasetReader(prefix: "\(dir)/part-0"), where: { _ in true })
        try copy.finish()
        for ext in [".bin", ".idx"] {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/copy\(ext)")), try Data(contentsOf: URL(fileURLWithPath: "\(dir)/part-0\(ext)")))
        }

        // Documents of 2 sequences, of none, and of one, as Megatron may write them.
        try Raw(dtype: .int32, lengths: [2, 3, 0, 4, 1], documentIndices: [0, 2, 2, 3, 5]).write("\(dir)/multi")
        let m = try IndexedDatasetReader(prefix: "\(dir)/multi")
        XCTAssertEqual((0..<4).map { m.documentSequences($0) }, [0..<2, 2..<2, 2..<3, 3..<5])
        let w = try IndexedDatasetWriter(prefix: "\(dir)/multi-merged", dtype: .int32)
        try w.addDocument([9])
        try w.addDocuments(from: m, where: { $0 != 2 })
        try w.finish()
        let r = try IndexedDatasetReader(prefix: "\(dir)/multi-merged")
        XCTAssertEqual(r.documentCount, 4)
        XCTAssertEqual((0..<4).map { r.documentSequences($0) }, [0..<1, 1..<3, 3..<3, 3..<5])
        XCTAssertEqual((0..<r.sequenceCount).map { r.sequenceLength($0) }, [1, 2, 3, 4, 1])
        XCTAssertEqual(try r.sequence(4), try m.sequence(4))
        XCTAssertThrowsError(try w.addDocuments(from: m, where: { _ in true }))   // finished
        let other = try IndexedDatasetWriter(prefix: "\(dir)/u16", dtype: .uint16)
        XCTAssertThrowsError(try other.addDocuments(from: m, where: { _ in true })) { e in
            XCTAssertTrue("\(e)".contains("int32") && "\(e)".contains("uint16"), "\(e)")
        }
    }

    /// Until finish there is no .idx at the prefix (a writer killed at any
    /// point before leaves no dataset, or the old one intact), and an
    /// abandoned writer removes its partial .bin.
    func testUnfinishedWriterLeavesNoIndex() throws {
        let fresh = "\(dir)/fresh"
        var w: IndexedDatasetWriter? = try IndexedDatasetWriter(prefix: fresh, dtype: .uint16)
        for i in 0..<3000 { try w?.addDocument([Int32](repeating: Int32(i % 60_000), count: 700)) }   // > 1 MiB: flushed
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertEqual(names, ["fresh.bin.tmp"], "the spools are unlinked; no .idx, no .bin")
        XCTAssertThrowsError(try IndexedDatasetReader(prefix: fresh))
        w = nil
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])

        // Rewriting a dataset: the old one stays readable until finish.
        let old: [[Int32]] = [[1, 2], [3]]
        try write(old, "\(dir)/ds", .uint16)
        let again = try IndexedDatasetWriter(prefix: "\(dir)/ds", dtype: .int32)
        try again.addDocument([100_000, 5, 6])
        try assertHolds(try IndexedDatasetReader(prefix: "\(dir)/ds"), old)
        try again.finish()
        let r = try IndexedDatasetReader(prefix: "\(dir)/ds")
        XCTAssertEqual(r.dtype, .int32)
        try assertHolds(r, [[100_000, 5, 6]])
    }

    /// An index written field by field, valid or not.
    struct Raw {
        var magic = IndexedDatasetFormat.magic
        var version: UInt64 = 1
        var code: UInt8
        var lengths: [Int32]
        var pointers: [Int64]
        var documentIndices: [Int64]
        var sequenceCount: UInt64?
        var documentIndexCount: UInt64?
        var tail: [UInt8] = []
        var binBytes: Int?

        init(dtype: IndexedDType, lengths: [Int32], documentIndices: [Int64]) {
            code = dtype.rawValue
            self.lengths = lengths
            var p: Int64 = 0
            pointers = lengths.map { l in defer { p += Int64(l) * Int64(dtype.byteSize) }; return p }
            self.documentIndices = documentIndices
        }

        var idx: [UInt8] {
            var out = magic
            func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
            put(version)
            out.append(code)
            put(sequenceCount ?? UInt64(lengths.count))
            put(documentIndexCount ?? UInt64(documentIndices.count))
            lengths.forEach(put)
            pointers.forEach(put)
            documentIndices.forEach(put)
            return out + tail
        }

        func write(_ prefix: String) throws {
            try Data(idx).write(to: URL(fileURLWithPath: prefix + ".idx"))
            let size = IndexedDType(rawValue: code)?.byteSize ?? 1
            let n = binBytes ?? lengths.reduce(0) { $0 + Int($1) } * size
            // Tokens 0, 1, 2, … in the dtype.
            var bin = [UInt8]()
            for t in 0..<max(0, n / size) {
                withUnsafeBytes(of: UInt64(t % 60_000).littleEndian) { bin.append(contentsOf: $0.prefix(size)) }
            }
            bin += [UInt8](repeating: 0, count: max(0, n) % size)
            try Data(bin).write(to: URL(fileURLWithPath: prefix + ".bin"))
        }
    }

    func testCorruptIndexesAreRefusedNamingTheFile() throws {
        let good = Raw(dtype: .uint16, lengths: [3, 0, 5, 2], documentIndices: [0, 1, 2, 3, 4])
        let prefix = "\(dir)/bad"
        try good.write(prefix)
        XCTAssertEqual(try IndexedDatasetReader(prefix: prefix).tokenCount, 10)
        XCTAssertEqual(good.idx.count, 34 + 12 * 4 + 8 * 5)

        func variant(_ f: (inout Raw) -> Void) -> Raw { var r = good; f(&r); return r }
        let idx = prefix + ".idx", bin = prefix + ".bin"
        let cases: [(String, Raw, file: String, says: String)] = [
            ("magic", variant { $0.magic[3] = 0x58 }, idx, "magic"),
            ("version", variant { $0.version = 2 }, idx, "version 2"),
            ("dtype code 0", variant { $0.code = 0 }, idx, "dtype code 0"),
            ("dtype code 9", variant { $0.code = 9 }, idx, "dtype code 9"),
            ("float32", variant { $0.code = IndexedDType.float32.rawValue }, idx, "float32"),
            ("int64", variant { $0.code = IndexedDType.int64.rawValue }, idx, "int64"),
            ("S + 1", variant { $0.sequenceCount = 5 }, idx, "needs exactly"),
            ("S - 1", variant { $0.sequenceCount = 3 }, idx, "needs exactly"),
            ("S huge", variant { $0.sequenceCount = UInt64(1) << 62 }, idx, "far more"),
            ("S above Int.max", variant { $0.sequenceCount = UInt64.max }, idx, "impossible"),
            ("D + 1", variant { $0.documentIndexCount = 6 }, idx, "needs exactly"),
            ("D huge", variant { $0.documentIndexCount = UInt64(Int.max) }, idx, "far more"),
            ("D = 0", variant { $0.documentIndexCount = 0; $0.documentIndices = [] }, idx, "no document indices"),
            ("extended", variant { $0.tail = [0] }, idx, "needs exactly"),
            ("modes", variant { $0.tail = [0, 0, 0, 0] }, idx, "multimodal"),
            ("first document index", variant { $0.documentIndices[0] = 1 }, idx, "document index 0"),
            ("decreasing document indices", variant { $0.documentIndices[2] = 0 }, idx, "less than"),
            ("document index beyond S", variant { $0.documentIndices[3] = 9 }, idx, "beyond"),
            ("last document index", variant { $0.documentIndices[4] = 3 }, idx, "last document index"),
            ("negative length", variant { $0.lengths[1] = -2 }, idx, "length -2"),
            ("pointer", variant { $0.pointers[2] += 2 }, idx, "starts at byte"),
            ("first pointer", variant { $0.pointers[0] = 2 }, idx, "starts at byte"),
            ("length vs pointers", variant { $0.lengths[0] = 4 }, idx, "starts at byte"),
            ("bin short", variant { $0.binBytes = 19 }, bin, "describes 20"),
            ("bin long", variant { $0.binBytes = 22 }, bin, "describes 20"),
            ("bin empty", variant { $0.binBytes = 0 }, bin, "describes 20"),
        ]
        for (name, raw, file, says) in cases {
            try raw.write(prefix)
            XCTAssertThrowsError(try IndexedDatasetReader(prefix: prefix), name) { e in
                guard let e = e as? IndexedDatasetError else { return XCTFail("\(name): not an IndexedDatasetError: \(e)") }
                XCTAssertEqual(e.file, file, name)
                XCTAssertTrue(e.message.contains(says), "\(name): \(e)")
                XCTAssertTrue(e.description.hasPrefix(file + ": "), name)
            }
        }
        // Truncated anywhere, and missing files.
        for n in [0, 1, 9, 33, 34, 35, good.idx.count - 1] {
            try good.write(prefix)
            try Data(good.idx.prefix(n)).write(to: URL(fileURLWithPath: idx))
            XCTAssertThrowsError(try IndexedDatasetReader(prefix: prefix), "truncated to \(n)") { e in
                XCTAssertEqual((e as? IndexedDatasetError)?.file, idx, "\(e)")
            }
        }
        try good.write(prefix)
        try FileManager.default.removeItem(atPath: bin)
        XCTAssertThrowsError(try IndexedDatasetReader(prefix: prefix)) { XCTAssertEqual(($0 as? IndexedDatasetError)?.file, bin) }
        try FileManager.default.removeItem(atPath: idx)
        XCTAssertThrowsError(try IndexedDatasetReader(prefix: prefix)) { XCTAssertEqual(($0 as? IndexedDatasetError)?.file, idx) }
    }

    /// 2,000 mutated indexes (bytes replaced, inserted, dropped, truncated,
    /// header fields overwritten): each opens and reads consistently, or is
    /// refused with an IndexedDatasetError — never a trap.
    func testMutatedIndexesOpenConsistentlyOrAreRefused() throws {
        var g = SplitMix64(seed: 2026)
        let docs = Self.documents(12, maxLength: 30, bound: 65_536, &g)
        let prefix = "\(dir)/fuzz"
        try write(docs, prefix, .uint16)
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: prefix + ".idx")))
        let bin = try Data(contentsOf: URL(fileURLWithPath: prefix + ".bin"))
        var opened = 0, refused = 0
        for _ in 0..<2000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...3, using: &g) where !bytes.isEmpty {
                let i = Int.random(in: 0..<bytes.count, using: &g)
                switch Int.random(in: 0..<7, using: &g) {
                case 0: bytes[i] = UInt8.random(in: 0...255, using: &g)
                case 1: bytes[i] ^= 1 << UInt8.random(in: 0..<8, using: &g)
                case 2: bytes.remove(at: i)
                case 3: bytes.insert(UInt8.random(in: 0...255, using: &g), at: i)
                case 4: bytes = Array(bytes[..<i])
                case 5:   // a small or huge count in a header field or a section entry
                    let at = [9, 17, 18, 26, 34 + 4 * Int.random(in: 0..<12, using: &g)].randomElement(using: &g)!
                    let v: UInt64 = [0, 1, 12, 13, UInt64.random(in: 0...UInt64.max, using: &g), UInt64(Int.max), UInt64(Int32.max)].randomElement(using: &g)!
                    for k in 0..<8 where at + k < bytes.count { bytes[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
                default: bytes += [UInt8](repeating: 0, count: Int.random(in: 1...24, using: &g))
                }
            }
            try Data(bytes).write(to: URL(fileURLWithPath: prefix + ".idx"))
            do {
                let r = try IndexedDatasetReader(prefix: prefix)
                opened += 1
                // What opened is self-consistent and within the .bin.
                XCTAssertEqual(r.tokenCount * r.dtype.byteSize, bin.count)
                var total = 0
                for s in 0..<r.sequenceCount {
                    XCTAssertEqual(r.sequenceStart(s), total)
                    XCTAssertEqual(try r.sequence(s).count, r.sequenceLength(s))
                    total += r.sequenceLength(s)
                }
                XCTAssertEqual(total, r.tokenCount)
                var covered = 0
                for d in 0..<r.documentCount {
                    let range = r.documentSequences(d)
                    XCTAssertEqual(range.lowerBound, covered)
                    covered = range.upperBound
                }
                XCTAssertEqual(covered, r.sequenceCount)
            } catch let e as IndexedDatasetError {
                refused += 1
                XCTAssertTrue(e.file.hasPrefix(prefix), "\(e)")
                XCTAssertFalse(e.message.isEmpty)
            }
        }
        print("indexed fuzz: \(opened) opened consistently, \(refused) refused")
        XCTAssertGreaterThan(refused, 1500, "the mutations are mostly damage")
    }

    // MARK: Megatron-LM interop

    /// A Python with megatron-core: HERD_PYTHON, else /tmp/spenv's, else python3.
    static func megatronPython() throws -> String {
        let env = ProcessInfo.processInfo.environment
        let python: String
        if let p = env["HERD_PYTHON"], !p.isEmpty {
            python = p.contains("/") ? p : (Spawn.which(p) ?? p)
        } else if FileManager.default.isExecutableFile(atPath: "/tmp/spenv/bin/python") {
            python = "/tmp/spenv/bin/python"
        } else if let p = Spawn.which("python3") {
            python = p
        } else {
            throw XCTSkip("megatron-core is not installed for python3 (no python3 on PATH); pip install megatron-core torch to run this test")
        }
        let reason: String
        do {
            let r = try Spawn.capture(python, ["-c", "import megatron.core.datasets.indexed_dataset"])
            if r.status == 0 { return python }
            reason = r.err.split(separator: "\n").last.map(String.init) ?? "exit status \(r.status)"
        } catch {
            reason = "\(error)"
        }
        throw XCTSkip("megatron-core is not installed for \(python) (\(reason)); pip install megatron-core torch to run this test")
    }

    /// Runs the commands of Tests/Data/megatron_indexed.py in one Python
    /// process (megatron-core and torch take seconds to import) and returns
    /// their results.
    func megatron(_ python: String, _ commands: [[String]]) throws -> [[String: Any]] {
        let script = "Tests/Data/megatron_indexed.py", batch = "\(dir)/commands.json"
        try JSONSerialization.data(withJSONObject: commands).write(to: URL(fileURLWithPath: batch))
        let r = try Spawn.capture(python, [script, "batch", batch])
        guard r.status == 0, let line = r.out.split(separator: "\n").last(where: { $0.hasPrefix("RESULT ") }),
              let results = try JSONSerialization.jsonObject(with: Data(line.dropFirst(7).utf8)) as? [[String: Any]],
              results.count == commands.count else {
            throw TestFailure("\(script) failed (status \(r.status)): \(r.err.suffix(2000))")
        }
        return results
    }

    func testMegatronCoreReadsHerdAndHerdReadsMegatron() throws {
        let python = try Self.megatronPython()
        var g = SplitMix64(seed: 15)
        let dtypes = [(IndexedDType.uint16, Int32(65_536)), (.int32, Int32.max)]
        var corpora: [IndexedDType: [[Int32]]] = [:]
        var commands: [[String]] = []
        for (dtype, bound) in dtypes {
            let docs = [[]] + Self.documents(60, maxLength: 200, bound: bound, &g) + [[bound - 1, 0], []]
            corpora[dtype] = docs
            let docsPath = "\(dir)/docs-\(dtype.name).json"
            try JSONSerialization.data(withJSONObject: docs.map { $0.map(Int.init) }).write(to: URL(fileURLWithPath: docsPath))
            try write(docs, "\(dir)/herd-\(dtype.name)", dtype)
            commands += [
                // Megatron's IndexedDatasetBuilder writes, one sequence per document.
                ["build", "\(dir)/megatron-\(dtype.name)", dtype.name, docsPath],
                // As preprocess_data.py does: an empty text gets no sequence.
                ["build", "\(dir)/megatron-sparse-\(dtype.name)", dtype.name, docsPath, "--empty-as-no-sequence"],
                // megatron-core's IndexedDataset reads what Herd wrote.
                ["read", "\(dir)/herd-\(dtype.name)"],
            ]
        }
        let results = try megatron(python, commands)

        for (k, (dtype, _)) in dtypes.enumerated() {
            let docs = try XCTUnwrap(corpora[dtype])
            let theirs = "\(dir)/megatron-\(dtype.name)", ours = "\(dir)/herd-\(dtype.name)"
            // (a) Herd reads what Megatron wrote.
            let r = try IndexedDatasetReader(prefix: theirs)
            XCTAssertEqual(r.dtype, dtype)
            try assertHolds(r, docs)

            // (b) Megatron reads what Herd wrote.
            let read = results[3 * k + 2]
            XCTAssertEqual(read["len"] as? Int, docs.count)
            XCTAssertEqual(read["document_indices"] as? [Int], Array(0...docs.count))
            XCTAssertEqual(read["dtype"] as? String, dtype.name)
            XCTAssertEqual((read["documents"] as? [[Int]])?.map { $0.map { Int32($0) } }, docs)
            XCTAssertEqual((read["sequences"] as? [[Int]])?.map { $0.map { Int32($0) } }, docs)

            // (c) The same documents make the same bytes.
            for ext in [".bin", ".idx"] {
                let a = try Data(contentsOf: URL(fileURLWithPath: theirs + ext)), b = try Data(contentsOf: URL(fileURLWithPath: ours + ext))
                XCTAssertEqual(a, b, "\(dtype.name) \(ext): Megatron wrote \(a.count) bytes, Herd \(b.count)")
            }

            // (d) Documents without sequences: Herd reads them, and copies
            // them byte for byte.
            let sparse = "\(dir)/megatron-sparse-\(dtype.name)"
            let s = try IndexedDatasetReader(prefix: sparse)
            XCTAssertEqual(s.documentCount, docs.count)
            XCTAssertEqual(s.sequenceCount, docs.filter { !$0.isEmpty }.count)
            for (d, doc) in docs.enumerated() {
                let seqs = s.documentSequences(d)
                XCTAssertEqual(seqs.count, doc.isEmpty ? 0 : 1)
                XCTAssertEqual(try seqs.flatMap { try s.sequence($0) }, doc)
            }
            let copy = "\(dir)/herd-copy-\(dtype.name)"
            let w = try IndexedDatasetWriter(prefix: copy, dtype: dtype)
            try w.addDocuments(from: s, where: { _ in true })
            try w.finish()
            for ext in [".bin", ".idx"] {
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: sparse + ext)), try Data(contentsOf: URL(fileURLWithPath: copy + ext)), "copy \(ext)")
            }
        }
    }
}

/// A counter threads add to (the concurrency test's failures).
private final class FailureCount: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
