import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The merge of a preparation's units into OUT/text_document.{bin,idx}, in
/// four steps, so that every rank shares the work that grows with the
/// corpus and one process only does what must be done in order:
///
/// 1. `findDuplicates` (every rank): each rank owns the content hashes
///    whose high word is its rank modulo the ranks, reads every part's
///    hashes in plan order, and lists the documents whose hash (of those it
///    owns) was seen before — so the set of hashes, the one thing that
///    grows with the corpus, is divided among the ranks.
/// 2. `decideMerge` (rank 0): from those lists and every part's index —
///    about 44 bytes a document, never its tokens — fixes where each
///    part's kept tokens go in the .bin. Writes each part's keep flags, the
///    whole .idx (as text_document.idx.tmp), an empty .bin of the final
///    size, and `merge.json` last.
/// 3. `copyTokens` (every rank): its share of the parts, each part's kept
///    tokens copied with pwrite to their place in text_document.bin.tmp.
/// 4. `publish` (rank 0): the .bin's checksum, then .bin and .idx renamed
///    into place, `manifest.json`, and OUT/.prepare removed.
///
/// The bytes do not depend on how many ranks copy. A rerun after a kill
/// redoes the step it was in (copying is idempotent: the same bytes to the
/// same places).
extension Preparation {
    /// What the decision fixed: each part's place in the .bin, the totals,
    /// and the statistics the manifest reports.
    struct MergePlan: Codable {
        struct Part: Codable {
            var unit: Int
            var part: Int
            /// Where the part's kept tokens start in the .bin, and their bytes.
            var offset: Int
            var bytes: Int
        }
        var parts: [Part]
        var binBytes: Int
        var idxChecksum: String
        var sources: [PreparedDataset.Source]
    }

    static func mergeDirectory(_ plan: PreparationPlan) -> String {
        (plan.settings.workDirectory as NSString).appendingPathComponent("merge")
    }
    static func mergePlanPath(_ plan: PreparationPlan) -> String { (mergeDirectory(plan) as NSString).appendingPathComponent("merge.json") }
    static func keepPath(_ plan: PreparationPlan, _ p: MergePlan.Part) -> String {
        (mergeDirectory(plan) as NSString).appendingPathComponent(String(format: "unit-%06d.p%04d.keep", p.unit, p.part))
    }
    static func binTmp(_ plan: PreparationPlan) -> String { IndexedDatasetFormat.binPath(plan.settings.datasetPrefix) + ".tmp" }
    static func idxTmp(_ plan: PreparationPlan) -> String { IndexedDatasetFormat.idxPath(plan.settings.datasetPrefix) + ".tmp" }

    /// The decision, if a run made it and its files are all there.
    static func decidedMerge(_ plan: PreparationPlan) -> MergePlan? {
        let fm = FileManager.default
        guard fm.fileExists(atPath: binTmp(plan)), fm.fileExists(atPath: idxTmp(plan)),
              let data = fm.contents(atPath: mergePlanPath(plan)) else { return nil }
        return try? JSONDecoder().decode(MergePlan.self, from: data)
    }

    /// Merges every unit (all must be done) in this one process.
    @discardableResult
    public static func merge(_ plan: PreparationPlan, tick: () throws -> Void = {}) throws -> PreparedDataset {
        try findDuplicates(plan, rank: 0, ranks: 1, tick: tick)
        try decideMerge(plan, ranks: 1, tick: tick)
        try copyTokens(plan, rank: 0, ranks: 1, tick: tick)
        return try publish(plan, tick: tick)
    }

    static func duplicatesPath(_ plan: PreparationPlan, rank: Int, ranks: Int) -> String {
        (mergeDirectory(plan) as NSString).appendingPathComponent("duplicates-\(rank)-of-\(ranks).bin")
    }

    /// Every part of the plan, in order: (unit, part).
    static func parts(_ plan: PreparationPlan) throws -> [(unit: Int, part: Int)] {
        var out: [(Int, Int)] = []
        for (u, unit) in plan.units.enumerated() {
            let prefix = unitPrefix(plan, u)
            guard let data = FileManager.default.contents(atPath: prefix + ".json"), let r = try? JSONDecoder().decode(UnitResult.self, from: data) else {
                throw PreparationError("unit \(u) (\(unit.file.path)) is not prepared: \(prefix).json is missing or does not parse")
            }
            for p in 0..<r.parts { out.append((u, p)) }
        }
        return out
    }

    /// Step 1 (every rank): the documents whose text was seen before, among
    /// the hashes this rank owns, as (part's index in plan order, document)
    /// pairs of UInt32s in plan order. Done already (a rerun past the
    /// decision): nothing.
    public static func findDuplicates(_ plan: PreparationPlan, rank: Int, ranks: Int, tick: () throws -> Void = {}) throws {
        guard decidedMerge(plan) == nil else { return }
        try FileManager.default.createDirectory(atPath: mergeDirectory(plan), withIntermediateDirectories: true)
        // Streamed to the file: the duplicates of a corpus can be many.
        let path = duplicatesPath(plan, rank: rank, ranks: ranks)
        FileManager.default.createFile(atPath: path + ".tmp", contents: nil)
        guard let out = FileHandle(forWritingAtPath: path + ".tmp") else { throw PreparationError("cannot write \(path).tmp") }
        defer { try? out.close() }
        var found: [UInt32] = []
        found.reserveCapacity(1 << 16)
        func flush() throws {
            try out.write(contentsOf: found.withUnsafeBytes { Data($0) })
            found.removeAll(keepingCapacity: true)
        }
        if plan.settings.deduplicate {
            var seen = Set<ContentHash>()
            for (g, p) in try parts(plan).enumerated() {
                try tick()
                let path = partPrefix(unitPrefix(plan, p.unit), p.part) + ".hashes"
                guard let raw = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped), raw.count % 24 == 0 else {
                    throw PreparationError("\(path) is missing or not 24 bytes a document; remove \(unitPrefix(plan, p.unit)).json and rerun the same command to prepare that unit again")
                }
                raw.withUnsafeBytes { (b: UnsafeRawBufferPointer) in
                    for d in 0..<raw.count / 24 {
                        let high = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 24 * d, as: UInt64.self))
                        guard Int(high % UInt64(ranks)) == rank else { continue }
                        let low = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 24 * d + 8, as: UInt64.self))
                        if !seen.insert(ContentHash(high: high, low: low)).inserted { found.append(UInt32(g).littleEndian); found.append(UInt32(d).littleEndian) }
                    }
                }
                if found.count >= 1 << 16 { try flush() }
            }
        }
        try flush()
        try out.synchronize()
        try rename(path + ".tmp", path)
    }

    /// Every rank's duplicates, read in plan order as they were written: the
    /// documents of part `g` to drop, for g = 0, 1, 2, … in turn.
    struct DuplicateLists {
        private var lists: [PairReader]

        init(_ plan: PreparationPlan, ranks: Int) throws {
            lists = try (0..<ranks).map { try PairReader(path: duplicatesPath(plan, rank: $0, ranks: ranks)) }
        }

        /// The documents of part `g` that are duplicates (sorted).
        mutating func take(part g: Int) throws -> [Int] {
            var out: [Int] = []
            for r in lists.indices {
                while let (p, d) = try lists[r].peek(), p == g {
                    out.append(d)
                    lists[r].advance()
                }
            }
            return out.sorted()
        }
    }

    /// (part, document) pairs of UInt32s read from a file in blocks.
    struct PairReader {
        let path: String
        private let handle: FileHandle
        private var words: [UInt32] = []
        private var next = 0

        init(path: String) throws {
            guard let h = FileHandle(forReadingAtPath: path) else {
                throw PreparationError("\(path) is missing (each rank lists its duplicates there before the merge is decided)")
            }
            self.path = path; handle = h
        }

        mutating func peek() throws -> (Int, Int)? {
            if next + 1 >= words.count {
                guard let data = try handle.read(upToCount: 1 << 18), !data.isEmpty else { return nil }
                guard data.count % 8 == 0 else { throw PreparationError("\(path) is damaged (not whole pairs of 32-bit numbers)") }
                words = data.withUnsafeBytes { b in (0..<data.count / 4).map { UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) } }
                next = 0
            }
            return (Int(words[next]), Int(words[next + 1]))
        }

        mutating func advance() { next += 2 }
    }

    /// Step 2 (one rank): which documents stay and where every part's go,
    /// from the `ranks` lists of duplicates. Done already (a rerun): nothing.
    public static func decideMerge(_ plan: PreparationPlan, ranks: Int, tick: () throws -> Void = {}) throws {
        if decidedMerge(plan) != nil { return }
        let fm = FileManager.default
        let dtype = IndexedDType.optimal(vocabSize: try plan.tokenizer().vocabSize)
        try fm.createDirectory(atPath: mergeDirectory(plan), withIntermediateDirectories: true)
        var duplicates = try DuplicateLists(plan, ranks: ranks)
        var sources: [String: PreparedDataset.Source] = [:], order: [String] = []
        var parts: [MergePlan.Part] = [], offset = 0, sequences = 0, documents = 0
        for (u, unit) in plan.units.enumerated() {
            let prefix = unitPrefix(plan, u)
            guard let data = fm.contents(atPath: prefix + ".json"), let result = try? JSONDecoder().decode(UnitResult.self, from: data) else {
                throw PreparationError("unit \(u) (\(unit.file.path)) is not prepared: \(prefix).json is missing or does not parse")
            }
            var stats = PreparedDataset.Statistics()
            for p in 0..<result.parts {
                try tick()
                let part = MergePlan.Part(unit: u, part: p, offset: offset, bytes: 0)
                let kept: (bytes: Int, sequences: Int, documents: Int)
                do {
                    kept = try decide(partPrefix(prefix, p), dropping: try duplicates.take(part: parts.count), dtype: dtype, stats: &stats,
                                      keepFile: keepPath(plan, part))
                } catch {
                    // Damaged since it was written (a disk, a hand): say how to redo just this unit.
                    throw PreparationError("unit \(u) (\(unit.file.path)) cannot be merged: \(error); remove \(prefix).json and rerun the same command to prepare it again")
                }
                parts.append(MergePlan.Part(unit: u, part: p, offset: offset, bytes: kept.bytes))
                offset += kept.bytes; sequences += kept.sequences; documents += kept.documents
            }
            stats.emptyDocuments = result.counts.emptyDocuments
            stats.badLines = result.counts.badLines
            stats.inputBytes = unit.bytes
            let path = unit.file.path
            if sources[path] == nil { sources[path] = .init(path: path); order.append(path) }
            sources[path]!.statistics.add(stats)
            sources[path]!.firstBadLines = Array((sources[path]!.firstBadLines + result.counts.firstBadLines).prefix(InputCounts.maxBadLineMessages))
        }
        let header = IndexedDatasetHeader(dtype: dtype, sequenceCount: sequences, documentIndexCount: documents + 1)
        let idxChecksum = try writeIndex(plan, parts: parts, header: header, tick: tick)
        // The .bin at its final size, filled by the ranks' copies.
        let fd = open(binTmp(plan), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PreparationError("cannot create \(binTmp(plan)): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(offset)) == 0 else { throw PreparationError("cannot size \(binTmp(plan)) to \(offset) bytes: \(String(cString: strerror(errno)))") }
        let decided = MergePlan(parts: parts, binBytes: offset, idxChecksum: idxChecksum, sources: order.map { sources[$0]! })
        try durableWrite(try encoded(decided), to: mergePlanPath(plan) + ".tmp")
        try rename(mergePlanPath(plan) + ".tmp", mergePlanPath(plan))
    }

    /// One part's documents: kept but those `dropping` names (their text was
    /// seen before). Writes the keep flags (a byte a document) and returns what is kept.
    static func decide(_ prefix: String, dropping: [Int], dtype: IndexedDType,
                       stats: inout PreparedDataset.Statistics, keepFile: String) throws -> (bytes: Int, sequences: Int, documents: Int) {
        let reader = try IndexedDatasetReader(prefix: prefix)
        guard reader.dtype == dtype else { throw PreparationError("\(prefix) holds \(reader.dtype.name) tokens; the dataset holds \(dtype.name)") }
        guard let raw = try? Data(contentsOf: URL(fileURLWithPath: prefix + ".hashes"), options: .alwaysMapped),
              raw.count == 24 * reader.documentCount else {
            throw PreparationError("\(prefix).hashes does not hold 24 bytes for each of the part's \(reader.documentCount) documents")
        }
        var keep = [UInt8](repeating: 1, count: reader.documentCount)
        for d in dropping {
            guard d < keep.count else { throw PreparationError("\(prefix): a duplicate listed as document \(d) of \(keep.count)") }
            keep[d] = 0
        }
        stats.duplicatesDropped += dropping.count
        var bytes = 0, sequences = 0, documents = 0
        raw.withUnsafeBytes { (b: UnsafeRawBufferPointer) in
            for d in 0..<reader.documentCount where keep[d] != 0 {
                let seqs = reader.documentSequences(d)
                let n = reader.sequencePointer(seqs.upperBound) - reader.sequencePointer(seqs.lowerBound)
                bytes += n; sequences += seqs.count; documents += 1
                stats.documents += 1
                stats.textBytes += Int(UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 24 * d + 16, as: UInt64.self)))
                stats.tokens += n / dtype.byteSize
            }
        }
        guard FileManager.default.createFile(atPath: keepFile, contents: Data(keep)) else { throw PreparationError("cannot write \(keepFile)") }
        return (bytes, sequences, documents)
    }

    /// The kept documents' index, written as text_document.idx.tmp: the
    /// header, then the three sections, each filled at its own offset in
    /// one pass over the parts. Returns its checksum.
    static func writeIndex(_ plan: PreparationPlan, parts: [MergePlan.Part], header: IndexedDatasetHeader, tick: () throws -> Void) throws -> String {
        let path = idxTmp(plan)
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PreparationError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var lengths = PositionalWriter(fd: fd, path: path, at: header.lengthsOffset)
        var pointers = PositionalWriter(fd: fd, path: path, at: header.pointersOffset)
        var docIndices = PositionalWriter(fd: fd, path: path, at: header.documentIndicesOffset)
        defer { lengths.free(); pointers.free(); docIndices.free() }
        var top = PositionalWriter(fd: fd, path: path, at: 0)
        defer { top.free() }
        try header.serialized().withUnsafeBytes { try top.append($0) }
        try top.flush()
        try docIndices.append(Int64(0))
        let width = header.dtype.byteSize
        var pointer = 0, sequence = 0
        for p in parts {
            try tick()
            let reader = try IndexedDatasetReader(prefix: partPrefix(unitPrefix(plan, p.unit), p.part))
            let keep = try keepFlags(plan, p, documents: reader.documentCount)
            for d in 0..<reader.documentCount where keep[d] != 0 {
                for q in reader.documentSequences(d) {
                    let n = reader.sequenceLength(q)
                    try lengths.append(Int32(n))
                    try pointers.append(Int64(pointer))
                    pointer += n * width
                    sequence += 1
                }
                try docIndices.append(Int64(sequence))
            }
        }
        try lengths.flush(); try pointers.flush(); try docIndices.flush()
        guard sequence == header.sequenceCount, docIndices.position == header.indexFileSize else {
            throw PreparationError("\(path): wrote \(sequence) sequences of \(header.sequenceCount); internal inconsistency")
        }
        guard fsync(fd) == 0 else { throw PreparationError("cannot sync \(path): \(String(cString: strerror(errno)))") }
        return try checksum(ofFile: path, bytes: docIndices.position, tick: tick)
    }

    static func keepFlags(_ plan: PreparationPlan, _ p: MergePlan.Part, documents: Int) throws -> [UInt8] {
        let path = keepPath(plan, p)
        guard let data = FileManager.default.contents(atPath: path), data.count == documents else {
            throw PreparationError("\(path) is missing or does not hold a flag for each of the part's \(documents) documents; remove \(mergeDirectory(plan)) and rerun")
        }
        return [UInt8](data)
    }

    /// Step 2 (every rank): this rank's parts' kept tokens, each to its
    /// place in the .bin. Parts are dealt by bytes, largest first, each to
    /// the rank with the fewest so far — the same deal on every rank.
    public static func copyTokens(_ plan: PreparationPlan, rank: Int, ranks: Int, tick: () throws -> Void = {}) throws {
        guard let decided = decidedMerge(plan) else { throw PreparationError("\(mergePlanPath(plan)): the merge was not decided (rank 0 decides it first)") }
        var load = [Int](repeating: 0, count: max(ranks, 1)), mine: [Int] = []
        for i in decided.parts.indices.sorted(by: { decided.parts[$0].bytes != decided.parts[$1].bytes ? decided.parts[$0].bytes > decided.parts[$1].bytes : $0 < $1 }) {
            let r = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
            load[r] += decided.parts[i].bytes
            if r == rank { mine.append(i) }
        }
        let path = binTmp(plan)
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PreparationError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        for i in mine.sorted() {
            try tick()
            let p = decided.parts[i]
            let prefix = partPrefix(unitPrefix(plan, p.unit), p.part)
            let reader = try IndexedDatasetReader(prefix: prefix)
            let keep = try keepFlags(plan, p, documents: reader.documentCount)
            var out = p.offset, d = 0
            while d < reader.documentCount {
                guard keep[d] != 0 else { d += 1; continue }
                var e = d + 1
                while e < reader.documentCount && keep[e] != 0 { e += 1 }
                // The run d..<e of kept documents: one byte range of the part.
                var from = reader.sequencePointer(reader.documentSequences(d).lowerBound)
                let end = reader.sequencePointer(reader.documentSequences(e - 1).upperBound)
                while from < end {
                    let n = min(chunk, end - from)
                    try reader.readBytes(at: from, count: n, into: buffer)
                    try pwriteAll(fd, buffer, n, at: out, path: path)
                    from += n; out += n
                }
                d = e
            }
            guard out == p.offset + p.bytes else {
                throw PreparationError("\(prefix): copied \(out - p.offset) bytes where the merge decided \(p.bytes); remove \(mergeDirectory(plan)) and rerun")
            }
        }
        // Each rank makes its own writes durable (on a shared file system only the writer can).
        guard fsync(fd) == 0 else { throw PreparationError("cannot sync \(path): \(String(cString: strerror(errno)))") }
    }

    /// Step 3 (one rank, once every rank has copied): the checksum of the
    /// .bin, both files renamed into place, then manifest.json.
    public static func publish(_ plan: PreparationPlan, tick: () throws -> Void = {}) throws -> PreparedDataset {
        let s = plan.settings
        guard let decided = decidedMerge(plan) else { throw PreparationError("\(mergePlanPath(plan)): the merge was not decided") }
        let tok = try plan.tokenizer()
        let dtype = IndexedDType.optimal(vocabSize: tok.vocabSize)
        let binChecksum = try checksum(ofFile: binTmp(plan), bytes: decided.binBytes, tick: tick)
        // An old .idx at the prefix would describe the new .bin once it is
        // renamed: removed first, the directory synced between the steps.
        let idxFinal = IndexedDatasetFormat.idxPath(s.datasetPrefix)
        if unlink(idxFinal) != 0 && errno != ENOENT { throw PreparationError("cannot remove the old \(idxFinal): \(String(cString: strerror(errno)))") }
        try rename(binTmp(plan), IndexedDatasetFormat.binPath(s.datasetPrefix))
        try fsyncDirectory(s.out)
        try rename(idxTmp(plan), idxFinal)
        try fsyncDirectory(s.out)
        var totals = PreparedDataset.Statistics()
        for source in decided.sources { totals.add(source.statistics) }
        let manifest = PreparedDataset(dataset: PreparationSettings.datasetName, dtype: dtype.name, vocabSize: tok.vocabSize,
                                       tokenizer: tok.kind, tokenizerChecksum: plan.tokenizerChecksum,
                                       framing: tok is SentencePieceTokenizer ? "BOS, the document's tokens, EOS" : "the document's tokens, then a newline",
                                       totals: totals, sources: decided.sources,
                                       binChecksum: binChecksum, idxChecksum: decided.idxChecksum, settings: s)
        try durableWrite(try encoded(manifest), to: s.manifestPath + ".tmp")
        try rename(s.manifestPath + ".tmp", s.manifestPath)
        try fsyncDirectory(s.out)
        try? FileManager.default.removeItem(atPath: s.workDirectory)
        return manifest
    }

    /// Checksum64 of a file of `bytes` bytes, read in 4 MiB blocks.
    static func checksum(ofFile path: String, bytes: Int, tick: () throws -> Void) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PreparationError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let block = 4 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: block, alignment: 16)
        defer { buffer.deallocate() }
        var sum = Checksum64(), done = 0
        while done < bytes {
            let n = pread(fd, buffer, min(block, bytes - done), off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw PreparationError("\(path) ends at byte \(done) of \(bytes)") }
            sum.update(UnsafeRawBufferPointer(start: buffer, count: n))
            done += n
            if done % (64 << 20) < n { try tick() }
        }
        return sum.hex
    }

    static func pwriteAll(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int, at offset: Int, path: String) throws {
        var done = 0
        while done < count {
            let n = pwrite(fd, buffer + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw PreparationError("cannot write \(path) at \(offset + done): \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}

/// Little-endian values written at a moving position of a file through a
/// 1 MiB buffer: one of the .idx's three sections.
struct PositionalWriter {
    let fd: Int32
    let path: String
    private(set) var position: Int
    private let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
    private var used = 0

    init(fd: Int32, path: String, at position: Int) { self.fd = fd; self.path = path; self.position = position }

    mutating func append<T: FixedWidthInteger>(_ v: T) throws {
        if used + MemoryLayout<T>.size > 1 << 20 { try flush() }
        buffer.storeBytes(of: v.littleEndian, toByteOffset: used, as: T.self)
        used += MemoryLayout<T>.size
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) throws {
        try flush()
        try Preparation.pwriteAll(fd, bytes.baseAddress!, bytes.count, at: position, path: path)
        position += bytes.count
    }

    mutating func flush() throws {
        try Preparation.pwriteAll(fd, buffer, used, at: position, path: path)
        position += used
        used = 0
    }

    func free() { buffer.deallocate() }
}
