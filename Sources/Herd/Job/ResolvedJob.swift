import Foundation

/// A job resolved once: the manifest with its command-line overrides
/// applied and every path absolute, the model's shape, the step count, and
/// the text it came from. `herd submit`, `herd run` and `POST /api/jobs`
/// write it as RUN/job.json; the coordinator, every worker and `herd serve`
/// read that file and never the YAML again, so editing or deleting the
/// manifest after submit changes nothing about the running job.
///
/// Resolving reads no corpus: the shape comes from the manifest, the
/// tokenizer (byte; a prepared dataset's or the init's tokenizer file), or
/// the init's model. The one exception is a raw-text corpus with the
/// `char` tokenizer and no `model.vocab_size`: its vocabulary is the
/// corpus's characters, counted here once and stored.
public struct ResolvedJob: Codable, Sendable, Equatable {
    public static let currentVersion = 1

    public var version: Int
    public var manifest: JobManifest
    /// The shape every rank builds (vocabulary and context filled in).
    public var model: LlamaConfig
    /// Where the shape came from, for `herd plan` and the notes of a run.
    public var modelFrom: String
    /// The manifest as given and its text (RUN/manifest.yaml is written from it).
    public var source: String
    public var sourceText: String
    public var resolvedAt: Double

    /// Reads and checks the manifest at `path`, relative paths taken from
    /// `base` (default: the current directory), and resolves the model.
    public static func resolve(path: String, overrides: JobManifest.Overrides = .init(), base: String? = nil) throws -> ResolvedJob {
        let base = base ?? FileManager.default.currentDirectoryPath
        let text = try YAMLFields.text(path: YAMLFields.absolute(path, base: base), what: "manifest file")
        let manifest = try JobManifest.parse(yaml: text, file: path, overrides: overrides, base: base)
        return try resolve(manifest, text: text)
    }

    public static func resolve(_ manifest: JobManifest, text: String) throws -> ResolvedJob {
        let (model, from) = try shape(of: manifest)
        return ResolvedJob(version: currentVersion, manifest: manifest, model: model, modelFrom: from,
                           source: manifest.file, sourceText: text, resolvedAt: Date().timeIntervalSince1970)
    }

    /// The most raw text whose char vocabulary is counted to plan a job (64 MiB).
    public static let charVocabularyReadLimit = 64 << 20

    /// The model shape of a job, and where it came from, reading no corpus
    /// but a raw-text one of at most 64 MiB with the char tokenizer and no vocab_size.
    public static func shape(of m: JobManifest) throws -> (LlamaConfig, String) {
        var config = m.model.config
        if m.kind == .ppo { return (config, "the policy's init") }
        if m.kind == .prepare { return (config, "none: a prepare job trains no model") }
        if config.vocabSize > 0 { return (config, m.model.preset.map { "preset \($0)" } ?? "the manifest") }
        let tokenizer: any Tokenizer, from: String
        if m.kind.finetunes, let initFrom = m.initFrom {
            tokenizer = try TokenizerFile.forFineTuning(named: m.data.tokenizer, initFrom: initFrom)
            from = "the manifest, with the vocabulary of \(m.data.tokenizer == "from init" ? "the init's tokenizer" : m.data.tokenizer)"
        } else if let shards = m.data.shards ?? m.data.mix?.first?.shards {
            do { tokenizer = try PreparedData.tokenizer(for: shards, named: m.data.tokenizer) } catch {
                throw ManifestError(file: m.file, field: m.data.shards != nil ? "data.shards" : "data.mix[0].shards", message: "\(error)")
            }
            from = "the manifest, with the prepared dataset's vocabulary"
        } else if m.data.tokenizer == "byte" {
            tokenizer = ByteTokenizer()
            from = "the manifest, with the byte tokenizer's vocabulary"
        } else {
            // A char vocabulary is the corpus's characters: reading a small
            // corpus once here is cheap; a large one is refused, not read.
            let bytes = Corpus.byteCount(m.data.corpus)
            guard bytes <= charVocabularyReadLimit else {
                throw ManifestError(file: m.file, field: "model.vocab_size", message: String(
                    format: "%@ is %.1f GiB of raw text with the char tokenizer: its vocabulary would be read from all of it to plan the job; give model.vocab_size (its distinct characters), or prepare it with herd data prepare and train on data.shards",
                    m.data.corpus, Double(bytes) / 1_073_741_824))
            }
            return (try TrainingData(manifest: m).model, "the manifest, with the vocabulary of the corpus's characters (counted once, here)")
        }
        config.vocabSize = tokenizer.vocabSize
        return (config, from)
    }

    /// Writes RUN/job.json and RUN/manifest.yaml (each atomically).
    public func write(to run: RunDirectory) throws {
        try run.create()
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try enc.encode(self).write(to: URL(fileURLWithPath: run.resolvedJob), options: .atomic)
        try Data(sourceText.utf8).write(to: URL(fileURLWithPath: run.manifest), options: .atomic)
    }

    /// A stored job's resolved job: its run directory's job.json, or — for a
    /// job submitted before job.json existed — its manifest resolved once
    /// more from the directory it was submitted in, and written there.
    public static func stored(run: RunDirectory, manifest: String, workdir: String) throws -> ResolvedJob {
        if FileManager.default.fileExists(atPath: run.resolvedJob) { return try read(run) }
        var resolved = try resolve(path: manifest, overrides: .init(output: run.root), base: workdir)
        resolved.manifest.output = run.root
        try resolved.write(to: run)
        return resolved
    }

    public static func read(_ run: RunDirectory) throws -> ResolvedJob {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: run.resolvedJob)) } catch {
            throw ManifestError(file: run.resolvedJob, field: "", message: "cannot read the resolved job (written by herd submit or herd run): \(error.localizedDescription)")
        }
        let job: ResolvedJob
        do { job = try JSONDecoder().decode(ResolvedJob.self, from: data) } catch {
            throw ManifestError(file: run.resolvedJob, field: "", message: "not a resolved job this herd reads: \(error)")
        }
        guard job.version == currentVersion else {
            throw ManifestError(file: run.resolvedJob, field: "version", message: "version \(job.version); this herd reads \(currentVersion)")
        }
        return job
    }
}
