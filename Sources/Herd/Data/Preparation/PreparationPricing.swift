import Foundation

/// What preparing a corpus costs on a cluster, from rates measured here: a
/// real preparation (read, tokenize, write, merge) of a sample on one core.
/// Units are independent, so the tokenizing phase divides among all the
/// cluster's cores, and so does the merge's copy of the tokens; what stays
/// serial is the merge's decision (a pass over every document's hash) and
/// the checksum of the finished .bin, both on one process.
public struct PreparationPricing: Sendable {
    /// Text bytes per second per core, through the whole per-unit pipeline.
    public var bytesPerSecondPerCore: Double
    /// Token-file bytes per second one process copies into place.
    public var mergeBytesPerSecond: Double
    /// Token-file bytes per second the publishing process checksums.
    public var checksumBytesPerSecond: Double
    /// Seconds per document finding duplicates (its hash against the set;
    /// divided among the ranks) and deciding (its index read, its flag written; one process).
    public var findSecondsPerDocument: Double
    public var decideSecondsPerDocument: Double
    public var bytesPerToken: Double
    /// Text bytes per document in the sample.
    public var bytesPerDocument: Double
    public var tokenBytes: Int

    /// Prepares `documents` (JSON lines) in a temporary directory with `tokenizer` and times its phases.
    public static func measure(tokenizer: String, documents: [String]) throws -> PreparationPricing {
        let work = NSTemporaryDirectory() + "herd-price-\(getpid())"
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        // Eight files of the sample, each copy's documents made distinct (a
        // number in front), so that the merge's per-document rates are
        // measured on eight times the documents; the tokenizing rate is the
        // first file's, before the encoder's cache has seen the text.
        var inputs: [String] = []
        for k in 0..<8 {
            var lines = Data()
            for d in documents { lines += try JSONSerialization.data(withJSONObject: ["text": k == 0 ? d : "\(k) \(d)"]); lines += Data("\n".utf8) }
            inputs.append(work + "/sample-\(k).jsonl")
            try lines.write(to: URL(fileURLWithPath: inputs[k]))
        }
        var s = PreparationSettings(inputs: inputs, tokenizer: tokenizer, out: work + "/out")
        s.deduplicate = true
        guard let plan = try Preparation.begin(s) else { throw PreparationError("\(s.out) was already prepared") }
        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        var first: UnitReport?
        try Preparation.prepareUnits(plan, rank: 0, ranks: 1, progress: PreparationProgress(unitDone: { if $0.unit == 0 { first = $0 } }))
        let finding = try seconds { try Preparation.findDuplicates(plan, rank: 0, ranks: 1) }
        let deciding = try seconds { try Preparation.decideMerge(plan, ranks: 1) }
        try Preparation.copyTokens(plan, rank: 0, ranks: 1)
        let done = try Preparation.publish(plan)
        guard let first, first.seconds > 0 else { throw PreparationError("the sample's first unit was not timed") }
        let firstTextBytes = documents.reduce(0) { $0 + $1.utf8.count }
        // The copy's and the checksum's rates per byte, apart from their
        // fixed costs (file creation, fsyncs) that dominate a sample this
        // small: the dataset copied 16 times, then checksummed.
        let reader = try IndexedDatasetReader(prefix: s.datasetPrefix)
        let copy = try IndexedDatasetWriter(prefix: work + "/copy", dtype: reader.dtype)
        let copying = try seconds {
            for _ in 0..<16 { try copy.addDocuments(from: reader, where: { _ in true }) }
            try copy.finish()
        }
        let summing = try seconds { _ = try Preparation.checksum(ofFile: work + "/copy.bin", bytes: copy.binBytes, tick: {}) }
        let docs = max(1, done.totals.documents + done.totals.duplicatesDropped)
        return PreparationPricing(bytesPerSecondPerCore: Double(firstTextBytes) / first.seconds,
                                  mergeBytesPerSecond: Double(copy.binBytes) / copying,
                                  checksumBytesPerSecond: Double(copy.binBytes) / summing,
                                  findSecondsPerDocument: finding / Double(docs), decideSecondsPerDocument: deciding / Double(docs),
                                  bytesPerToken: done.totals.bytesPerToken, bytesPerDocument: Double(done.totals.textBytes) / Double(docs),
                                  tokenBytes: IndexedDType.optimal(vocabSize: done.vocabSize).byteSize)
    }

    /// Seconds to prepare `textBytes` on `cores` cores: tokenizing; the
    /// merge's parallel part — duplicates found and tokens copied, divided
    /// among the cores (at least this: the shared file system's bandwidth
    /// may bound it); and its serial part — the decision and the checksum.
    public func seconds(textBytes: Double, cores: Int, bytesPerDocument: Double? = nil) -> (tokenize: Double, parallel: Double, serial: Double) {
        let tokenFileBytes = textBytes / bytesPerToken * Double(tokenBytes)
        let documents = textBytes / (bytesPerDocument ?? self.bytesPerDocument)
        let cores = Double(max(cores, 1))
        return (textBytes / (bytesPerSecondPerCore * cores),
                (documents * findSecondsPerDocument + tokenFileBytes / mergeBytesPerSecond) / cores,
                documents * decideSecondsPerDocument + tokenFileBytes / checksumBytesPerSecond)
    }
}
