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
                                         tokens: result.tokens, seconds: Double(now - t0) / 1e9, rankUnitsDone: i + 1, rankUnits: mine.count,
                                         rankBytesDone: doneBytes, rankBytes: total))
            try progress.tick()
            let s = Double(now - start) / 1e9
            let rate = Double(doneBytes) / max(s, 1e-9)
            let eta = Double(total - doneBytes) / max(rate, 1)
            progress.say(String(format: "rank %d: unit %d/%d (%@) done; %.1f of %.1f MB, %.2f MB/s, ETA %.0f s", rank, i + 1, mine.count,
                                (plan.units[u].file.path as NSString).lastPathComponent, Double(doneBytes) / 1e6, Double(total) / 1e6, rate / 1e6, eta))
        }
    }

    /// Whether every unit of the plan is done (what ranks that finished their own wait for).
    public static func allDone(_ plan: PreparationPlan) -> Bool { plan.units.indices.allSatisfy { isDone(plan, unit: $0) } }

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

    /// Merges every unit (all must be done) into OUT and publishes it.
    @discardableResult
    public static func merge(_ plan: PreparationPlan, tick: () throws -> Void = {}) throws -> PreparedDataset {
        let s = plan.settings
        let tok = try plan.tokenizer()
        let dtype = IndexedDType.optimal(vocabSize: tok.vocabSize)
        let writer = try IndexedDatasetWriter(prefix: s.datasetPrefix, dtype: dtype)
        var seen = Set<ContentHash>()
        var sources: [String: PreparedDataset.Source] = [:], order: [String] = []
        for (u, unit) in plan.units.enumerated() {
            let prefix = unitPrefix(plan, u)
            guard let data = FileManager.default.contents(atPath: prefix + ".json"),
                  let result = try? JSONDecoder().decode(UnitResult.self, from: data) else {
                throw PreparationError("unit \(u) (\(unit.file.path)) is not prepared: \(prefix).json is missing or does not parse")
            }
            var stats = PreparedDataset.Statistics()
            for part in 0..<result.parts {
                try tick()
                do { try mergePart(partPrefix(prefix, part), into: writer, deduplicate: s.deduplicate, seen: &seen, stats: &stats) } catch {
                    // Damaged since it was written (a disk, a hand): say how to redo just this unit.
                    throw PreparationError("unit \(u) (\(unit.file.path)) cannot be merged: \(error); remove \(prefix).json and rerun the same command to prepare it again")
                }
            }
            stats.emptyDocuments = result.counts.emptyDocuments
            stats.badLines = result.counts.badLines
            stats.inputBytes = unit.bytes
            let path = unit.file.path
            if sources[path] == nil { sources[path] = .init(path: path); order.append(path) }
            sources[path]!.statistics.add(stats)
            sources[path]!.firstBadLines = Array((sources[path]!.firstBadLines + result.counts.firstBadLines).prefix(InputCounts.maxBadLineMessages))
        }
        try writer.finish()
        var totals = PreparedDataset.Statistics()
        for p in order { totals.add(sources[p]!.statistics) }
        let manifest = PreparedDataset(dataset: PreparationSettings.datasetName, dtype: dtype.name, vocabSize: tok.vocabSize,
                                       tokenizer: tok.kind, tokenizerChecksum: plan.tokenizerChecksum,
                                       framing: tok is SentencePieceTokenizer ? "BOS, the document's tokens, EOS" : "the document's tokens, then a newline",
                                       totals: totals, sources: order.map { sources[$0]! },
                                       binChecksum: writer.binChecksum ?? "", idxChecksum: writer.idxChecksum ?? "", settings: s)
        try durableWrite(try encoded(manifest), to: s.manifestPath + ".tmp")
        try rename(s.manifestPath + ".tmp", s.manifestPath)
        try fsyncDirectory(s.out)
        try? FileManager.default.removeItem(atPath: s.workDirectory)
        return manifest
    }

    /// One part's documents into the dataset, those whose text was seen before dropped.
    static func mergePart(_ prefix: String, into writer: IndexedDatasetWriter, deduplicate: Bool,
                          seen: inout Set<ContentHash>, stats: inout PreparedDataset.Statistics) throws {
        let reader = try IndexedDatasetReader(prefix: prefix)
        guard let raw = try? Data(contentsOf: URL(fileURLWithPath: prefix + ".hashes"), options: .alwaysMapped),
              raw.count == 24 * reader.documentCount else {
            throw PreparationError("\(prefix).hashes does not hold 24 bytes for each of the part's \(reader.documentCount) documents")
        }
        var keep = [Bool](repeating: true, count: reader.documentCount)
        raw.withUnsafeBytes { (b: UnsafeRawBufferPointer) in
            func word(_ i: Int) -> UInt64 { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) }
            for d in 0..<reader.documentCount {
                if deduplicate && !seen.insert(ContentHash(high: word(3 * d), low: word(3 * d + 1))).inserted {
                    keep[d] = false
                    stats.duplicatesDropped += 1
                    continue
                }
                stats.documents += 1
                stats.textBytes += Int(word(3 * d + 2))
                for q in reader.documentSequences(d) { stats.tokens += reader.sequenceLength(q) }
            }
        }
        try writer.addDocuments(from: reader, where: { keep[$0] })
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
