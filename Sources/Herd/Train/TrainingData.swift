import Foundation

/// The data of a job, read and split, and the model shape it implies (a
/// char-level vocabulary comes from the corpus): which dataset a job trains
/// on is decided here, by its kind and data section, and nowhere else.
/// Every rank loads it to train; planning reads only the resolved job.
public struct TrainingData {
    public let tokenizer: any Tokenizer
    public let dataset: any TrainingSource
    public let model: LlamaConfig

    public init(manifest m: JobManifest) throws {
        if m.kind == .reward, let initFrom = m.initFrom {
            let d: ComparisonData
            do { d = try ComparisonData(data: m.data, initFrom: initFrom, reward: m.reward, seed: m.seed) } catch let e as ManifestError { throw e } catch {
                throw ManifestError(file: m.file, field: "data.comparisons", message: "\(error)")
            }
            tokenizer = d.tokenizer
            dataset = d.dataset
            model = try Self.resolve(m, d.tokenizer)
            return
        }
        if m.kind == .sft, let initFrom = m.initFrom {
            let d: DemonstrationData
            do { d = try DemonstrationData(data: m.data, initFrom: initFrom) } catch let e as ManifestError { throw e } catch {
                throw ManifestError(file: m.file, field: "data.demonstrations", message: "\(error)")
            }
            tokenizer = d.tokenizer
            dataset = d.dataset
            model = try Self.resolve(m, d.tokenizer)
            return
        }
        if let mix = m.data.mix {
            var sources: [IndexedTokenSource] = []
            var tok: (any Tokenizer)?, firstSum: UInt64?
            for (i, e) in mix.enumerated() {
                let field = "data.mix[\(i)].shards"
                do {
                    // One tokenizer for all: the same file contents (or byte for all).
                    let (t, file) = try PreparedData.tokenizerWithFile(for: e.shards, named: m.data.tokenizer)
                    let sum = file.flatMap { Checksum64.ofFile($0)?.value }
                    if let first = tok, first.kind != t.kind || first.vocabSize != t.vocabSize || sum != firstSum {
                        throw PreparationError("its tokenizer (\(file ?? t.kind), \(t.vocabSize) tokens) is not data.mix[0]'s (\(first.kind), \(first.vocabSize) tokens); prepare every source with the same one")
                    }
                    if tok == nil { tok = t; firstSum = sum }
                    // Each source's windows from its own order (seed and index).
                    guard case .indexed(let prefix)? = PreparedData.locate(e.shards) else {
                        throw PreparationError("\(e.shards): expected an indexed dataset (herd data prepare's or Megatron's)")
                    }
                    sources.append(try IndexedTokenSource(prefix: prefix, seqLen: m.data.seqLen, seed: SplitMix64.mix(m.seed, UInt64(i)),
                                                          validationFraction: m.data.validationFraction))
                } catch let e as ManifestError { throw e } catch {
                    throw ManifestError(file: m.file, field: field, message: "\(error)")
                }
            }
            let schedule: MixtureSchedule
            do { schedule = try MixtureSchedule(weights: mix.map(\.weight), seed: m.seed) } catch {
                throw ManifestError(file: m.file, field: "data.mix", message: "\(error)")
            }
            let names = mix.map { ($0.shards as NSString).lastPathComponent }
            tokenizer = tok!
            dataset = MixtureSource(sources: sources, names: names, schedule: schedule)
            model = try Self.resolve(m, tokenizer)
            return
        }
        if let shards = m.data.shards {
            do {
                tokenizer = try PreparedData.tokenizer(for: shards, named: m.data.tokenizer)
                dataset = try PreparedData.source(shards, seqLen: m.data.seqLen, seed: m.seed, validationFraction: m.data.validationFraction)
            } catch let e as ManifestError { throw e } catch {
                throw ManifestError(file: m.file, field: "data.shards", message: "\(error)")
            }
            model = try Self.resolve(m, tokenizer)
            return
        }
        let corpus: Corpus
        do { corpus = try Corpus(path: m.data.corpus) } catch {
            throw ManifestError(file: m.file, field: "data.corpus", message: error.description)
        }
        let tok: any Tokenizer = m.data.tokenizer == "byte" ? ByteTokenizer() : CharTokenizer(corpus: corpus.text)
        tokenizer = tok
        let ids = try tok.encode(corpus.text)
        let d = TokenDataset(tokens: ids, validationFraction: m.data.validationFraction, seqLen: m.data.seqLen)
        guard d.train.count > m.data.seqLen + 1 else {
            throw ManifestError(file: m.file, field: "data.corpus",
                                message: "the training split has \(d.train.count) tokens, fewer than one sequence of data.seq_len + 1 = \(m.data.seqLen + 1)")
        }
        dataset = d
        model = try Self.resolve(m, tok)
    }

    /// The model shape with the tokenizer's vocabulary filled in.
    static func resolve(_ m: JobManifest, _ tok: any Tokenizer) throws -> LlamaConfig {
        var config = m.model.config
        if config.vocabSize == 0 { config.vocabSize = tok.vocabSize }
        guard config.vocabSize >= tok.vocabSize else {
            throw ManifestError(file: m.file, field: "model.vocab_size",
                                message: "must be at least the tokenizer's vocabulary (\(tok.vocabSize)), got \(config.vocabSize)")
        }
        return config
    }
}
