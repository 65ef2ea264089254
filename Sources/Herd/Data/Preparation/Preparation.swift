import Foundation

/// `herd data prepare`: a corpus into one Megatron indexed dataset, in
/// three phases.
///
/// 1. `begin`: the plan (units of work) is made, or the stored one checked
///    against the settings, in OUT/.prepare; the tokenizer is copied to OUT.
/// 2. `prepareUnits`, on every rank: each of its units not yet done is
///    tokenized into small datasets of its own (parts of about
///    `partBytes` of tokens), with a content hash and byte count per document;
///    a unit's `.json` is written last, so a unit is
///    done exactly when that file exists (a killed rank loses at most the
///    units it was working on).
/// 3. `merge`, on one rank once all units are done: the units' documents in
///    plan order into OUT/text_document.{bin,idx}, a document whose text was
///    seen before dropped; then OUT/manifest.json, then OUT/.prepare removed.
///
/// Rerunning after a kill at any point redoes only unfinished work, and the
/// result is byte-identical to an uninterrupted run's on any number of ranks.
public enum Preparation {
    /// Makes or continues the plan. nil when OUT already holds the finished dataset.
    public static func begin(_ settings: PreparationSettings) throws -> PreparationPlan? {
        let fm = FileManager.default
        if fm.fileExists(atPath: settings.manifestPath) {
            let done = try PreparedDataset.read(dir: settings.out)
            guard done.settings == settings else {
                throw PreparationError("\(settings.out) already holds a dataset prepared with other settings; choose another --out")
            }
            return nil
        }
        let plan = try PreparationPlan.make(settings)
        try fm.createDirectory(atPath: settings.workDirectory, withIntermediateDirectories: true)
        let stored = (settings.workDirectory as NSString).appendingPathComponent("plan.json")
        if let data = fm.contents(atPath: stored) {
            guard let old = try? JSONDecoder().decode(PreparationPlan.self, from: data) else {
                throw PreparationError("\(stored) does not parse; remove \(settings.workDirectory) to start afresh")
            }
            if let why = old.mismatch(with: plan) {
                throw PreparationError("\(settings.out) holds an unfinished preparation with other settings: \(why); rerun with the same ones, or remove \(settings.workDirectory) to start afresh")
            }
        } else {
            try durableWrite(try encoded(plan), to: stored + ".tmp")
            try rename(stored + ".tmp", stored)
        }
        if plan.tokenizerChecksum != nil {
            let copy = (settings.out as NSString).appendingPathComponent("tokenizer.model")
            guard let bytes = fm.contents(atPath: settings.tokenizer) else { throw PreparationError("--tokenizer: cannot read \(settings.tokenizer)") }
            try durableWrite(bytes, to: copy + ".tmp")
            try rename(copy + ".tmp", copy)
        } else {
            let json = (settings.out as NSString).appendingPathComponent("tokenizer.json")
            let tok = try plan.tokenizer()
            let data = try (tok as? CharTokenizer).map { try JSONEncoder().encode($0) } ?? Data(#"{"kind":"byte"}"#.utf8)
            try durableWrite(data, to: json + ".tmp")
            try rename(json + ".tmp", json)
        }
        return plan
    }

    /// The plan `begin` stored (what every MPI rank reads), or nil.
    public static func storedPlan(_ settings: PreparationSettings) throws -> PreparationPlan? {
        let stored = (settings.workDirectory as NSString).appendingPathComponent("plan.json")
        guard let data = FileManager.default.contents(atPath: stored) else { return nil }
        do {
            let plan = try JSONDecoder().decode(PreparationPlan.self, from: data)
            guard plan.settings == settings else { throw PreparationError("\(stored) was made with other settings") }
            return plan
        } catch let e as PreparationError { throw e } catch { throw PreparationError("\(stored) does not parse: \(error)") }
    }

    /// A unit's files in the work directory.
    static func unitPrefix(_ plan: PreparationPlan, _ u: Int) -> String {
        (plan.settings.workDirectory as NSString).appendingPathComponent(String(format: "unit-%06d", u))
    }

    /// Whether unit `u` is done: its `.json` (written last) and every part it lists exist.
    public static func isDone(_ plan: PreparationPlan, unit u: Int) -> Bool {
        let prefix = unitPrefix(plan, u), fm = FileManager.default
        guard let data = fm.contents(atPath: prefix + ".json"), let r = try? JSONDecoder().decode(UnitResult.self, from: data) else { return false }
        return (0..<r.parts).allSatisfy { p in
            [".bin", ".idx", ".hashes"].allSatisfy { fm.fileExists(atPath: partPrefix(prefix, p) + $0) }
        }
    }

    /// What a unit's preparation found.
    struct UnitResult: Codable {
        var counts: InputCounts
        var documents: Int
        var tokens: Int
        var parts: Int
    }

    /// Prepares this rank's units that are not done, reporting each (and ticking as it reads).
    public static func prepareUnits(_ plan: PreparationPlan, rank: Int, ranks: Int, progress: PreparationProgress = .init()) throws {
        let mine = plan.units(forRank: rank, of: ranks).filter { !isDone(plan, unit: $0) }
        let total = mine.reduce(0) { $0 + plan.units[$1].bytes }
        guard !mine.isEmpty else { return progress.say("rank \(rank): nothing left to prepare") }
        let framing = DocumentFraming(tokenizer: try plan.tokenizer())
        let start = DispatchTime.now().uptimeNanoseconds
        var doneBytes = 0
        for (i, u) in mine.enumerated() {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let result = try prepare(plan, unit: u, framing: framing, tick: progress.tick)
            let now = DispatchTime.now().uptimeNanoseconds
            doneBytes += plan.units[u].bytes
            progress.unitDone(UnitReport(unit: u, file: plan.units[u].file.path, bytes: plan.units[u].bytes, documents: result.documents,
                                         tokens: result.tokens, seconds: Double(now - t0) / 1e9, rankUnitsDone: i + 1, rankUnits: mine.count))
            try progress.tick()
            let s = Double(now - start) / 1e9
            let rate = Double(doneBytes) / max(s, 1e-9)
            let eta = Double(total - doneBytes) / max(rate, 1)
            progress.say(String(format: "rank %d: unit %d/%d (%@) done; %.1f of %.1f MB, %.2f MB/s, ETA %.0f s", rank, i + 1, mine.count,
                                (plan.units[u].file.path as NSString).lastPathComponent, Double(doneBytes) / 1e6, Double(total) / 1e6, rate / 1e6, eta))
        }
    }

    static func partPrefix(_ unitPrefix: String, _ p: Int) -> String { unitPrefix + String(format: ".p%04d", p) }

    /// One part of a unit being written: its tokens and, per document, the
    /// text's hash and byte count, spooled.
    final class Part {
        let prefix: String
        let writer: IndexedDatasetWriter
        private let spool: FileHandle
        private var hashes: [UInt64] = []

        init(prefix: String, dtype: IndexedDType) throws {
            self.prefix = prefix
            writer = try IndexedDatasetWriter(prefix: prefix, dtype: dtype)
            FileManager.default.createFile(atPath: prefix + ".hashes.tmp", contents: nil)
            guard let h = FileHandle(forWritingAtPath: prefix + ".hashes.tmp") else { throw PreparationError("cannot write \(prefix).hashes.tmp") }
            spool = h
            hashes.reserveCapacity(3 << 14)
        }

        func endDocument(_ h: ContentHash, bytes: Int) throws {
            try writer.endOpenDocument()
            hashes += [h.high.littleEndian, h.low.littleEndian, UInt64(bytes).littleEndian]
            if hashes.count >= 3 << 14 { try flush() }
        }

        private func flush() throws {
            try spool.write(contentsOf: hashes.withUnsafeBytes { Data($0) })
            hashes.removeAll(keepingCapacity: true)
        }

        func finish() throws {
            try writer.finish()
            try flush()
            try spool.synchronize()
            try spool.close()
            try Preparation.rename(prefix + ".hashes.tmp", prefix + ".hashes")
        }
    }

    /// One unit: its documents tokenized into parts (unit-N.pP.{bin,idx,hashes}),
    /// then unit-N.json, which says the unit is done.
    @discardableResult
    static func prepare(_ plan: PreparationPlan, unit u: Int, framing: DocumentFraming, tick: () throws -> Void = {}) throws -> UnitResult {
        let unit = plan.units[u], prefix = unitPrefix(plan, u)
        let dtype = IndexedDType.optimal(vocabSize: framing.vocabSize)
        var part = try Part(prefix: partPrefix(prefix, 0), dtype: dtype)
        var parts = 1, documents = 0, tokens = 0
        var ids: [TokenID] = []
        ids.reserveCapacity(1 << 20)
        var hasher = ContentHash.Hasher(), docBytes = 0, sinceTick = 0
        let partBytes = plan.settings.partBytes   // read once: the closure runs per chunk
        let reader = DocumentReader(file: unit.file, textKey: plan.settings.textKey, onBadLine: plan.settings.onBadLine, byteRange: unit.byteRange)
        let counts = try reader.forEachChunk { chunk, first, last in
            if first { hasher = ContentHash.Hasher(); docBytes = 0 }
            hasher.update(chunk)
            docBytes += chunk.count
            sinceTick += chunk.count
            if sinceTick >= PreparationProgress.tickBytes { sinceTick = 0; try tick() }
            ids.removeAll(keepingCapacity: true)
            try framing.encode(chunk, first: first, last: last, into: &ids)
            try ids.withUnsafeBufferPointer { try part.writer.appendToDocument($0) }
            if last {
                try part.endDocument(hasher.finish(), bytes: docBytes)
                if part.writer.binBytes >= partBytes {
                    documents += part.writer.documents; tokens += part.writer.tokens
                    try part.finish()
                    part = try Part(prefix: partPrefix(prefix, parts), dtype: dtype)
                    parts += 1
                }
            }
        }
        documents += part.writer.documents; tokens += part.writer.tokens
        try part.finish()
        let result = UnitResult(counts: counts, documents: documents, tokens: tokens, parts: parts)
        try durableWrite(try encoded(result), to: prefix + ".json.tmp")
        try rename(prefix + ".json.tmp", prefix + ".json")
        return result
    }

    static func encoded<T: Encodable>(_ value: T) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(value)
    }

    static func rename(_ from: String, _ to: String) throws {
        guard Foundation.rename(from, to) == 0 else { throw PreparationError("cannot rename \(from) to \(to): \(String(cString: strerror(errno)))") }
    }
}

extension PreparedDataset.Statistics {
    mutating func add(_ o: Self) {
        documents += o.documents; tokens += o.tokens; textBytes += o.textBytes
        duplicatesDropped += o.duplicatesDropped; emptyDocuments += o.emptyDocuments; badLines += o.badLines; inputBytes += o.inputBytes
        bytesPerToken = tokens > 0 ? Double(textBytes) / Double(tokens) : 0
    }
}
