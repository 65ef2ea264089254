import Foundation

/// The units of work of a preparation, fixed by its first run: each input
/// file, or a byte range of a large uncompressed JSON-lines file. Units are
/// prepared independently (by any rank, in any order) and merged in their
/// order, so the dataset depends on the plan alone — not on how many ranks
/// ran it or how often it was interrupted.
public struct PreparationPlan: Codable, Sendable, Equatable {
    public var settings: PreparationSettings
    /// The checksum of the SentencePiece model, so a rerun with another file at the same path is refused.
    public var tokenizerChecksum: String?
    /// A char vocabulary is the corpus's characters, found by a first pass.
    public var charVocabulary: String?
    public var units: [Unit]

    public struct Unit: Codable, Sendable, Equatable {
        public var file: InputFile
        public var start: Int?
        public var end: Int?
        public var byteRange: Range<Int>? { start.flatMap { s in end.map { s..<$0 } } }
        public var bytes: Int { byteRange?.count ?? file.bytes }
    }

    public var inputBytes: Int { units.reduce(0) { $0 + $1.bytes } }

    public static func make(_ settings: PreparationSettings) throws -> PreparationPlan {
        let units = try self.units(settings)
        var plan = PreparationPlan(settings: settings, tokenizerChecksum: nil, charVocabulary: nil, units: units)
        switch settings.tokenizer {
        case "byte": break
        case "char": plan.charVocabulary = try plan.charactersOfCorpus()
        default:
            _ = try plan.tokenizer()   // a clear error now, before any rank starts
            plan.tokenizerChecksum = Checksum64.ofFile(settings.tokenizer)?.hex
        }
        return plan
    }

    /// The units the settings cut their inputs into, reading file sizes only
    /// (what a prepare job counts its progress in before any rank starts).
    public static func units(_ settings: PreparationSettings) throws -> [Unit] {
        guard settings.unitBytes >= 1 << 10 else { throw PreparationError("--unit-bytes: expected at least 1024, got \(settings.unitBytes)") }
        guard settings.partBytes >= 1 << 10 else { throw PreparationError("--part-bytes: expected at least 1024, got \(settings.partBytes)") }
        guard !settings.textKey.isEmpty else { throw PreparationError("--text-key: expected a field name, got an empty one") }
        var units: [Unit] = []
        for f in try InputFiles.expand(settings.inputs) {
            if f.format == .jsonLines && f.compression == .none && f.bytes > settings.unitBytes {
                var s = 0
                while s < f.bytes {
                    let e = min(s + settings.unitBytes, f.bytes)
                    units.append(Unit(file: f, start: s, end: e))
                    s = e
                }
            } else {
                units.append(Unit(file: f, start: nil, end: nil))
            }
        }
        return units
    }

    /// The tokenizer the plan names.
    public func tokenizer() throws -> any Tokenizer {
        switch settings.tokenizer {
        case "byte": return ByteTokenizer()
        case "char":
            guard let chars = charVocabulary else { throw PreparationError("the plan has no char vocabulary") }
            return CharTokenizer(characters: Array(chars.unicodeScalars))
        default:
            guard FileManager.default.fileExists(atPath: settings.tokenizer) else {
                throw PreparationError("--tokenizer: no such file: \(settings.tokenizer) (expected a SentencePiece tokenizer.model, or byte or char)")
            }
            do { return try SentencePieceTokenizer(path: settings.tokenizer) } catch {
                throw PreparationError("--tokenizer: \(settings.tokenizer) is not a SentencePiece model: \(error)")
            }
        }
    }

    /// Every character of the corpus, and "\n" (which ends each document).
    func charactersOfCorpus() throws -> String {
        var seen = Set<Unicode.Scalar>(["\n"])
        for u in units {
            _ = try DocumentReader(file: u.file, textKey: settings.textKey, onBadLine: settings.onBadLine, byteRange: u.byteRange)
                .forEachChunk { chunk, _, _ in for c in String(decoding: chunk, as: UTF8.self).unicodeScalars { seen.insert(c) } }
        }
        var s = String.UnicodeScalarView()
        s.append(contentsOf: seen.sorted { $0.value < $1.value })
        return String(s)
    }

    /// The units rank `rank` of `ranks` prepares: the largest first, each to
    /// the rank with the fewest bytes so far (lowest rank on a tie) — the
    /// same deal on every rank, from the plan alone.
    public func units(forRank rank: Int, of ranks: Int) -> [Int] {
        var load = [Int](repeating: 0, count: max(ranks, 1)), mine: [Int] = []
        let order = units.indices.sorted { units[$0].bytes != units[$1].bytes ? units[$0].bytes > units[$1].bytes : $0 < $1 }
        for u in order {
            let r = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
            load[r] += units[u].bytes
            if r == rank { mine.append(u) }
        }
        return mine.sorted()
    }

    /// Why a stored plan cannot be continued with these settings, or nil.
    func mismatch(with other: PreparationPlan) -> String? {
        let a = settings, b = other.settings
        if a.inputs != b.inputs { return "the inputs differ (\(a.inputs) then, \(b.inputs) now)" }
        if a.tokenizer != b.tokenizer { return "--tokenizer differs (\(a.tokenizer) then, \(b.tokenizer) now)" }
        if tokenizerChecksum != other.tokenizerChecksum { return "the tokenizer file \(b.tokenizer) changed since" }
        if a.textKey != b.textKey { return "--text-key differs (\(a.textKey) then, \(b.textKey) now)" }
        if a.onBadLine != b.onBadLine { return "--on-bad-line differs (\(a.onBadLine.rawValue) then, \(b.onBadLine.rawValue) now)" }
        if a.unitBytes != b.unitBytes { return "--unit-bytes differs (\(a.unitBytes) then, \(b.unitBytes) now)" }
        if a.deduplicate != b.deduplicate { return "deduplication differs" }
        if a.partBytes != b.partBytes { return "--part-bytes differs (\(a.partBytes) then, \(b.partBytes) now)" }
        if units != other.units {
            let changed = zip(units, other.units).first { $0 != $1 }.map { $0.0.file.path } ?? "the list of files"
            return "the input files changed since (\(changed))"
        }
        return nil
    }
}
