import Foundation

/// What preparing a corpus costs on a cluster, from rates measured here: a
/// real preparation (read, tokenize, write, merge) of a sample on one core.
/// Units are independent, so the tokenizing phase divides among all the
/// cluster's cores; the merge is one process copying the token files.
public struct PreparationPricing: Sendable {
    /// Text bytes per second per core, through the whole per-unit pipeline.
    public var bytesPerSecondPerCore: Double
    /// Token-file bytes per second the merge copies.
    public var mergeBytesPerSecond: Double
    public var bytesPerToken: Double
    public var tokenBytes: Int

    /// Prepares `documents` (JSON lines) in a temporary directory with `tokenizer` and times its phases.
    public static func measure(tokenizer: String, documents: [String]) throws -> PreparationPricing {
        let work = NSTemporaryDirectory() + "herd-price-\(getpid())"
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        var lines = Data()
        for d in documents { lines += try JSONSerialization.data(withJSONObject: ["text": d]); lines += Data("\n".utf8) }
        try lines.write(to: URL(fileURLWithPath: work + "/sample.jsonl"))
        var s = PreparationSettings(inputs: [work + "/sample.jsonl"], tokenizer: tokenizer, out: work + "/out")
        s.deduplicate = false
        guard let plan = try Preparation.begin(s) else { throw PreparationError("\(s.out) was already prepared") }
        let t0 = DispatchTime.now().uptimeNanoseconds
        try Preparation.prepareUnits(plan, rank: 0, ranks: 1)
        let t1 = DispatchTime.now().uptimeNanoseconds
        let done = try Preparation.merge(plan)
        // The merge's rate per byte, apart from its fixed cost (file creation,
        // fsyncs) that dominates a sample this small: the dataset copied 16 times.
        let reader = try IndexedDatasetReader(prefix: s.datasetPrefix)
        let copy = try IndexedDatasetWriter(prefix: work + "/copy", dtype: reader.dtype)
        let t2 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<16 { try copy.addDocuments(from: reader, where: { _ in true }) }
        try copy.finish()
        let t3 = DispatchTime.now().uptimeNanoseconds
        return PreparationPricing(bytesPerSecondPerCore: Double(done.totals.textBytes) / (Double(t1 - t0) / 1e9),
                                  mergeBytesPerSecond: Double(copy.binBytes) / (Double(t3 - t2) / 1e9),
                                  bytesPerToken: done.totals.bytesPerToken, tokenBytes: IndexedDType.optimal(vocabSize: done.vocabSize).byteSize)
    }

    /// Seconds to prepare `textBytes` on `cores` cores: (tokenizing, merging).
    public func seconds(textBytes: Double, cores: Int) -> (tokenize: Double, merge: Double) {
        let tokens = textBytes / bytesPerToken
        return (textBytes / (bytesPerSecondPerCore * Double(max(cores, 1))), tokens * Double(tokenBytes) / mergeBytesPerSecond)
    }
}
