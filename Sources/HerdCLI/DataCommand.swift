import ArgumentParser
import Foundation
import Herd

extension BadLinePolicy: ExpressibleByArgument {}

/// `herd data prepare`.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Prepare corpora.", subcommands: [Prepare.self, Price.self])

    /// `herd data price`: what a preparation costs on a cluster.
    struct Price: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Price a preparation on a cluster: the time to tokenize and merge a corpus of N tokens (or bytes) on all its cores, at the rates measured here on Tiny Shakespeare.")
        @Option(help: "The cluster (a name in clusters/ or a path).") var cluster: String
        @Option(help: "Tokens to prepare (e.g. 2e12).") var tokens: Double?
        @Option(help: "Or: bytes of text to prepare.") var bytes: Double?
        @Option(help: "The tokenizer.model to measure.") var tokenizer = "../shared/data/llama2-tokenizer.model"
        @Option(help: "Bytes of text per token (default: as measured on the sample).") var bytesPerToken: Double?
        @Option(help: "Bytes of text per document (default: as measured on the sample, Tiny Shakespeare's paragraphs: short, so the merge's per-document work is priced high).") var bytesPerDocument: Double?

        func run() throws {
            guard (tokens == nil) != (bytes == nil) else { fail(ValidationError("give one of --tokens and --bytes")) }
            do {
                let spec = try ClusterSpec.load(path: Submission.resolveCluster(cluster, base: FileManager.default.currentDirectoryPath))
                let cores = spec.nodes.reduce(0) { $0 + $1.hosts.count * $1.cores }
                let corpus = "../shared/data/tinyshakespeare.txt"
                guard let text = try? String(contentsOfFile: corpus, encoding: .utf8) else { throw PreparationError("cannot read the sample \(corpus)") }
                let p = try PreparationPricing.measure(tokenizer: tokenizer, documents: TokenizerThroughput.documents(of: text))
                let bpt = bytesPerToken ?? p.bytesPerToken
                let textBytes = bytes ?? tokens! * bpt
                var priced = p
                priced.bytesPerToken = bpt
                let t = priced.seconds(textBytes: textBytes, cores: cores, bytesPerDocument: bytesPerDocument)
                print(String(format: "measured here (one core, Tiny Shakespeare): %.2f MB/s of text tokenized and written; the merge finds duplicates in %.2f µs a document, decides in %.2f µs a document, copies %.0f MB/s, checksums %.0f MB/s; %.2f bytes per token, %.0f bytes per document",
                             p.bytesPerSecondPerCore / 1e6, p.findSecondsPerDocument * 1e6, p.decideSecondsPerDocument * 1e6, p.mergeBytesPerSecond / 1e6, p.checksumBytesPerSecond / 1e6,
                             p.bytesPerToken, bytesPerDocument ?? p.bytesPerDocument))
                print(String(format: "%@: %.3g tokens = %.2f TB of text at %.2f bytes per token, on %d cores (%d nodes): tokenizing %@, the merge's duplicates and copy on all cores %@ (at least: the shared file system's bandwidth may bound it), its decision and checksum on one %@; total %@",
                             spec.name, textBytes / bpt, textBytes / 1e12, bpt, cores, spec.hosts.count,
                             formatDuration(t.tokenize), formatDuration(t.parallel), formatDuration(t.serial), formatDuration(t.tokenize + t.parallel + t.serial)))
            } catch { fail(error) }
        }
    }

    struct Prepare: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tokenize a corpus into a Megatron indexed dataset (OUT/text_document.bin and .idx, OUT/manifest.json, the tokenizer) that a job reads with data.shards; in parallel on MPI ranks, and resumable: rerun the same command after any interruption.")
        @Argument(help: "Files, directories and globs: plain text (one document per file) and JSON lines (.jsonl, .json, .ndjson: one document per line), each also .gz or .zst.")
        var inputs: [String] = []
        @Option(help: "An input, as an argument (repeatable).") var corpus: [String] = []
        @Option(help: "A SentencePiece tokenizer.model (Llama 2's), or byte, or char.") var tokenizer: String
        @Option(help: "The directory to write.") var out: String
        @Option(help: "The field of a JSON line that holds the document's text.") var textKey = "text"
        @Option(help: "A malformed JSON line: fail (naming it) or skip (counted in the manifest).") var onBadLine: BadLinePolicy = .fail
        @Option(help: "Uncompressed JSON-lines files larger than this many bytes are cut into units of this size.") var unitBytes = 256 << 20
        @Option(help: "A unit's output goes on in a new part after this many bytes of tokens (bounds the merge's memory).") var partBytes = 32 << 20
        @Flag(inversion: .prefixedNo, help: "Drop documents whose text is identical to an earlier one's.") var dedup = true
        @Option(help: "MPI ranks to prepare with (mpirun on this machine).") var ranks = 1
        @Flag(help: "Write the plan (OUT/.prepare/plan.json) and stop: for ranks started by your own mpirun with --mpi-rank.") var planOnly = false
        @Flag(help: "Run as one MPI rank of the plan (under your mpirun, after --plan-only).") var mpiRank = false

        var settings: PreparationSettings {
            // Absolute paths: a rerun from another directory continues the same preparation.
            func absolute(_ p: String) -> String {
                p.hasPrefix("/") ? p : ((FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(p) as NSString).standardizingPath
            }
            let tok = ["byte", "char"].contains(tokenizer) ? tokenizer : absolute(tokenizer)
            var s = PreparationSettings(inputs: (corpus + inputs).map(absolute), tokenizer: tok, out: absolute(out))
            s.textKey = textKey
            s.onBadLine = onBadLine
            s.unitBytes = unitBytes
            s.deduplicate = dedup
            s.partBytes = partBytes
            return s
        }

        func validate() throws {
            guard !(corpus + inputs).isEmpty else { throw ValidationError("give the corpus: files, directories or globs") }
            guard ranks >= 1 && ranks <= 4096 else { throw ValidationError("--ranks: expected 1 to 4096, got \(ranks)") }
        }

        func run() throws {
            if mpiRank { return runRank() }
            let plan: PreparationPlan
            do {
                guard let p = try Preparation.begin(settings) else { return print("\(out): already prepared (\(out)/manifest.json)") }
                plan = p
            } catch { fail(error) }
            print(String(format: "herd data prepare: %d unit(s), %.1f MB of input, %d rank(s)", plan.units.count, Double(plan.inputBytes) / 1e6, ranks))
            fflush(stdout)
            if planOnly { return print("plan written to \(settings.workDirectory)/plan.json; start the ranks with mpirun … herd data prepare (the same arguments) --mpi-rank") }
            if ranks > 1 {
                do { try MPILauncher.run(ranks: ranks, herdArguments: Array(CommandLine.arguments.dropFirst()) + ["--mpi-rank"]) } catch { fail(error) }
                do { report(try PreparedDataset.read(dir: out)) } catch { fail(error) }
                return
            }
            do {
                try Preparation.prepareUnits(plan, rank: 0, ranks: 1, progress: .init(say: { print($0); fflush(stdout) }))
                report(try merge(plan))
            } catch { fail(error) }
        }

        /// One MPI rank: its units, then (rank 0, once every rank is done) the merge.
        func runRank() {
            MPIRuntime.start()
            let world = MPICommunicator.world()
            do {
                guard let plan = try Preparation.storedPlan(settings) else { throw PreparationError("\(out): no plan; run without --mpi-rank") }
                try Preparation.prepareUnits(plan, rank: world.rank, ranks: world.size, progress: .init(say: { print($0); fflush(stdout) }))
                world.barrier()
                let start = DispatchTime.now().uptimeNanoseconds
                if try PreparationRank.merge(plan, on: world, beat: { _ in }) != nil {
                    print(String(format: "merged %d unit(s) on %d rank(s) in %.2f s", plan.units.count, world.size, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
                }
            } catch {
                MPIRuntime.abort(rank: world.rank, reason: "\(error)")
            }
            MPIRuntime.finish()
        }

        /// The merge, timed (it is one process: what a large preparation waits for at its end).
        @discardableResult
        func merge(_ plan: PreparationPlan) throws -> PreparedDataset {
            let start = DispatchTime.now().uptimeNanoseconds
            let d = try Preparation.merge(plan)
            print(String(format: "merged %d unit(s) in %.2f s", plan.units.count, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
            fflush(stdout)
            return d
        }

        func report(_ d: PreparedDataset) {
            let t = d.totals
            print(String(format: "%@: %d documents, %d tokens (%@), %.2f bytes per token; %d duplicates dropped, %d bad lines skipped, %d empty documents",
                         out, t.documents, t.tokens, d.dtype, t.bytesPerToken, t.duplicatesDropped, t.badLines, t.emptyDocuments))
        }
    }
}
