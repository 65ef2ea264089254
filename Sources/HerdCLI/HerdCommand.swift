import ArgumentParser
import Foundation
import Herd

struct HerdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herd",
        abstract: "Train Llama 2 models the way the Llama 2 paper did.",
        subcommands: [Run.self, Submit.self, Status.self, Watch.self, Logs.self, Cancel.self, Resume.self, Adopt.self, PlanCommand.self, Validate.self, DataCommand.self, CheckpointCommand.self, Generate.self, Import.self, Export.self, Tokenize.self, Score.self, RLHF.self, Presets.self, Bench.self, Version.self, Worker.self, Place.self, Coordinate.self, HeartbeatStandIns.self, Serve.self, Plot.self])
}

/// Prints a manifest error the way a user should see it and exits non-zero.
func fail(_ error: Error) -> Never {
    FileHandle.standardError.write("herd: error: \(error)\n".data(using: .utf8)!)
    Foundation.exit(2)
}

struct ManifestOptions: ParsableArguments {
    @Argument(help: "The job manifest (jobs/*.yaml).")
    var job: String

    @Option(help: "Read the corpus from this path instead of the manifest's data.corpus.")
    var corpus: String?

    @Option(help: "Override the manifest's steps.")
    var steps: Int?

    @Option(help: "Write the run here instead of the manifest's output directory.")
    var output: String?

    var overrides: JobManifest.Overrides { .init(corpus: corpus, steps: steps, output: output) }

    /// The job resolved once (paths absolute, model shape, steps), or exit with the error.
    func resolve() -> ResolvedJob {
        do { return try ResolvedJob.resolve(path: job, overrides: overrides) } catch { fail(error) }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a job in the foreground: in this process, or as mpirun workers when it asks for more than one rank.")
    @OptionGroup var options: ManifestOptions

    @Option(help: "After training, print this many sampled tokens (temperature 0.8).")
    var sample: Int = 0

    @Flag(help: "Write each rank's final weights (raw fp32) to RUN/weights/.")
    var saveWeights = false

    @Flag(inversion: .prefixedNo, help: "Continue from the run directory's newest complete checkpoint, if any.")
    var resume = true

    @Option(help: "Continue from this checkpoint step instead of the newest.")
    var resumeStep: Int?

    @Option(help: "Run under a coordinator on this cluster (a name in clusters/ or a path), as herd submit does but in the foreground: stored, watched, restarted on failure.")
    var cluster: String?

    func run() throws {
        if let cluster {
            if resumeStep != nil || !resume || sample > 0 || saveWeights {
                fail(ValidationError("--cluster runs the job as herd submit does; --resume-step, --no-resume, --sample and --save-weights are for herd run without it"))
            }
            try superviseInForeground(options, cluster: cluster)
        }
        let resolved = options.resolve()
        let manifest = resolved.manifest
        do { try resolved.write(to: RunDirectory(manifest.output)) } catch { fail(error) }
        if manifest.ranks > 1 { return try launch(resolved) }
        StopSignal.install()
        if manifest.kind == .prepare {
            if sample > 0 || saveWeights || resumeStep != nil { fail(ValidationError("--sample, --save-weights and --resume-step are for training jobs")) }
            do {
                let heartbeat = try Heartbeat(run: manifest.output, rank: 0, interval: manifest.monitor.heartbeatSeconds)
                try PreparationRank(manifest: manifest, world: SingleProcessCommunicator(), heartbeat: heartbeat).run { print($0); fflush(stdout) }
            } catch let stop as PreparationStopped {
                FileHandle.standardError.write("herd: \(stop)\n".data(using: .utf8)!)
                Foundation.exit(143)
            } catch { fail(error) }
            return
        }
        if manifest.kind == .ppo && sample > 0 {
            fail(ValidationError("--sample is for language-model jobs; sample a PPO policy with herd generate --model \(manifest.output)"))
        }
        let job: TrainingJob
        do { job = try TrainingJob(manifest: manifest) } catch { fail(error) }
        let summary: TrainingSummary
        do {
            summary = try job.run(resume: resume, resumeStep: resumeStep, saveWeights: saveWeights) { line in print(line); fflush(stdout) }
        } catch {
            if case TrainingError.stopped = error {
                FileHandle.standardError.write("herd: \(error)\n".data(using: .utf8)!)
                Foundation.exit(143)
            }
            if let full = error as? CheckpointError, full.isNoSpace {
                // Its own status: free space and run it again; it resumes from LATEST.
                FileHandle.standardError.write("herd: error: \(error)\n".data(using: .utf8)!)
                Foundation.exit(CheckpointSpace.exitStatus)
            }
            fail(error)
        }
        print(job.doneLine(summary))
        if sample > 0 {
            let model = job.task.trainedModel, tokenizer = job.task.tokenizer
            let acts = Activations(config: model.config, batch: 1, seqLen: manifest.data.seqLen)
            let prompt = (try? tokenizer.encode("\n")) ?? []
            let ids = model.generate(prompt: prompt, count: sample, temperature: 0.8, seed: manifest.seed, acts: acts)
            print("sample:\n" + tokenizer.decode(ids))
        }
    }

    /// Plans the layout, writes plan.json and starts the ranks with mpirun.
    func launch(_ resolved: ResolvedJob) throws {
        let manifest = resolved.manifest, model = resolved.model
        var plan: Plan
        do {
            plan = try Planner.plan(manifest: manifest, model: model, host: ProcessInfo.processInfo.hostName,
                                    cores: manifest.threads ?? ProcessInfo.processInfo.activeProcessorCount, saveWeights: saveWeights)
            // Every rank must fit in this machine's memory before any is started.
            let here = ClusterSpec.thisMachine(slots: plan.world, cores: manifest.threads ?? ProcessInfo.processInfo.activeProcessorCount)
            if let problem = try PlanReport.make(manifest: manifest, model: model, cluster: here).memoryProblem {
                throw ValidationError(problem)
            }
        } catch { fail(error) }
        plan.resume = resume || resumeStep != nil
        plan.resumeStep = resumeStep
        try plan.write(to: manifest.output)
        let planPath = RunDirectory(manifest.output).plan
        print("herd: \(plan.world) ranks (data \(plan.data) × tensor \(plan.tensor)\(ParallelContext.stageLabel(plan.zero))), plan \(planPath)")
        fflush(stdout)
        do { try MPILauncher.run(plan: plan, planPath: planPath) } catch let f as MPILauncher.Failure where f.status == 143 || f.status == CheckpointSpace.exitStatus {
            // The ranks stopped together on request, after their checkpoint, or a checkpoint found no space (said above).
            Foundation.exit(f.status)
        } catch { fail(error) }
    }
}

/// Run by a Slurm batch script before its ranks start: the plan's hosts
/// become the nodes Slurm allocated (see SlurmAllocation).
/// `herd bench --only heartbeats`'s stand-in ranks, in a process of their own.
struct HeartbeatStandIns: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "heartbeat-standins", abstract: "Stand-in ranks that only heartbeat (herd bench).", shouldDisplay: false)
    @Option(name: .customLong("run")) var runDirectory: String
    @Option var ranks: Int
    @Option var transport: String
    @Option var interval: Double
    @Option var silentRank: Int
    @Option var silentAfter: Double

    func run() throws {
        guard let t = HeartbeatTransport(rawValue: transport) else { throw ValidationError("--transport: network or files, got \(transport)") }
        HeartbeatLoad.standIns(run: runDirectory, ranks: ranks, transport: t, interval: interval, silentRank: silentRank, silentAfter: silentAfter)
    }
}

struct Place: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put a plan's ranks on the nodes of a Slurm allocation (run by herd's batch scripts).", shouldDisplay: false)

    @Option(help: "The plan.json to rewrite.")
    var plan: String
    @Option(help: "The Slurm job id.")
    var job: String
    @Argument(help: "The allocation's nodes, in Slurm's order (scontrol show hostnames).")
    var nodes: [String]

    func run() throws {
        do {
            let placed = try SlurmAllocation.place(try Plan.read(plan), on: nodes, job: job)
            try placed.write(to: (plan as NSString).deletingLastPathComponent)
            print("herd: placed on Slurm job \(job)'s allocation: \(SlurmAllocation.describe(placed))")
        } catch { fail(error) }
    }
}

/// One MPI rank: reads the plan, trains its part, and on any failure aborts
/// the whole job with its rank and the reason.
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One rank of a job (started by herd run through mpirun).", shouldDisplay: false)

    @Option(help: "The plan.json the coordinator wrote.")
    var plan: String

    func run() throws {
        MPIRuntime.start()
        StopSignal.install()
        let world = MPICommunicator.world()
        do {
            let plan = try Plan.read(self.plan)
            guard world.size == plan.world else {
                MPIRuntime.abort(rank: world.rank, reason: "started with \(world.size) ranks, the plan has \(plan.world)")
            }
            // The job as resolved by herd run or herd submit, on the plan's layout: no YAML is read here.
            var manifest = try ResolvedJob.read(RunDirectory(plan.output)).manifest.laidOut(data: plan.data, tensor: plan.tensor)
            manifest.output = plan.output
            // Where this rank runs, beside where the plan put it (the heartbeat records it too).
            let host = ProcessInfo.processInfo.hostName, planned = plan.ranks[world.rank].host
            print("herd: rank \(world.rank) of \(world.size) on \(host)" + (planned == host ? "" : " (the plan placed it on \(planned))"))
            fflush(stdout)
            // Beating from the start: loading data and resuming count as progress.
            let heartbeat = try Heartbeat(run: manifest.output, rank: world.rank, interval: manifest.monitor.heartbeatSeconds)
            heartbeat.giveUpAfter = 2 * manifest.monitor.hangTimeoutSeconds
            if manifest.kind == .prepare {
                try PreparationRank(manifest: manifest, world: world, heartbeat: heartbeat).run { line in print(line); fflush(stdout) }
                MPIRuntime.finish()
                return
            }
            // A PPO job's frozen models may have ranks of their own: they serve the trainers, who are a world of their own.
            let mine = plan.ranks[world.rank]
            let part = plan.world > plan.data * plan.tensor ? world.split(color: mine.holdsFrozenModels ? 1 : 0, key: world.rank) : world
            if mine.holdsFrozenModels {
                let stopped = try TrainingJob.serveFrozenModels(manifest: manifest, world: world, group: part, threads: mine.threads,
                                                                heartbeat: heartbeat) { line in
                    print(line); fflush(stdout)
                }
                heartbeat.stop(phase: stopped ? "stopped" : "done")
                if !stopped { world.barrier() }
                MPIRuntime.finish()
                if stopped { Foundation.exit(143) }
                return
            }
            let context = ParallelContext(world: part, rank: mine, zero: plan.zero)
            let job = try TrainingJob(manifest: manifest, context: context, jobWorld: world, planned: plan.model, heartbeat: heartbeat)
            let summary = try job.run(resume: plan.resume, resumeStep: plan.resumeStep, saveWeights: plan.saveWeights) { line in
                print(line); fflush(stdout)
            }
            heartbeat.stop(phase: "done")
            world.barrier()
            if context.isLeader { print(job.doneLine(summary)) }
        } catch let stop as TrainingError {
            guard case .stopped = stop else { MPIRuntime.abort(rank: world.rank, reason: "\(stop)") }
            // Every rank agreed to stop at the same step and saved: leave together.
            if world.rank == 0 { FileHandle.standardError.write("herd: \(stop)\n".data(using: .utf8)!) }
            MPIRuntime.finish()
            Foundation.exit(143)
        } catch let stop as PreparationStopped {
            // Each rank stops where it is (no collective to agree in): the units done are kept.
            if stop.rank == 0 { FileHandle.standardError.write("herd: \(stop)\n".data(using: .utf8)!) }
            Foundation.exit(143)
        } catch let full as CheckpointError where full.isNoSpace {
            // Every rank learned it together, after the rank that found no space
            // recorded it (checkpoint_failed); the job ends with its own status.
            MPIRuntime.abort(rank: world.rank, reason: "\(full)", code: CheckpointSpace.exitStatus)
        } catch {
            MPIRuntime.abort(rank: world.rank, reason: "\(error)")
        }
        MPIRuntime.finish()
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a manifest without training: every field, the files it names, and that its model, batch and layout fit this machine (or --cluster).")
    @OptionGroup var options: ManifestOptions
    @Option(help: "Check the layout and memory against this cluster (a name in clusters/ or a path) instead of this machine.")
    var cluster: String?

    func run() throws {
        let resolved = options.resolve()
        let m = resolved.manifest
        do {
            let target = try cluster.map { try ClusterSpec.load(path: Submission.resolveCluster($0, base: FileManager.default.currentDirectoryPath)) }
                ?? .thisMachine(slots: m.ranks, cores: m.threads ?? ProcessInfo.processInfo.activeProcessorCount)
            let report = try PlanReport.make(manifest: m, model: resolved.model, cluster: target)
            if let problem = report.memoryProblem {
                throw ValidationError(problem + (cluster == nil ? " (checked against this machine; --cluster C checks against a cluster)" : ""))
            }
        } catch { fail(error) }
        if let p = m.preparation {
            return print("\(m.file): ok — prepare job \"\(m.name)\", \(m.steps) unit(s) of \(p.inputs.joined(separator: ", ")) → \(p.out) on \(m.parallelism.data) rank(s)")
        }
        if let p = m.ppo {
            return print("\(m.file): ok — ppo job \"\(m.name)\", \(m.steps) PPO iterations of \(p.rollouts) rollouts (mini-batches of \(p.miniBatch)) from \(m.initFrom ?? "?")")
        }
        print("\(m.file): ok — \(m.kind.rawValue) job \"\(m.name)\", \(m.steps) steps of \(m.batch.sequences)×\(m.data.seqLen) tokens")
    }
}

struct Presets: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the model presets and their parameter counts.")

    func run() throws {
        for (name, c) in LlamaConfig.presets.sorted(by: { $0.key < $1.key }) {
            let vocab = c.vocabSize == 0 ? "tokenizer's" : String(c.vocabSize)
            let params = c.vocabSize == 0 ? "depends on vocab" : String(c.parameterCount)
            print("\(name): dim \(c.dim), layers \(c.layers), heads \(c.heads), kv heads \(c.kvHeads), ffn \(c.ffnDim), vocab \(vocab), context \(c.maxSeqLen), parameters \(params)")
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure sgemm and training throughput on this machine.")

    @Option(help: "Timed training steps per model.")
    var steps: Int = 20

    @Option(help: "OpenBLAS threads (default: all cores).")
    var threads: Int?

    @Option(help: "Only these models (shakespeare-char, small-512); repeatable.")
    var model: [String] = []

    @Option(help: "Only this bench: generation, tokenizer, preparation, recompute, memory, heartbeats (repeatable; default: all but heartbeats).")
    var only: [String] = []

    /// The coordinator watching 2,048 and 16,384 stand-in ranks, by datagrams and by files.
    func benchHeartbeats() throws {
        print("coordinator watching stand-in ranks (heartbeat every 1 s, poll every \(HeartbeatLoad.pollInterval) s, hang timeout 10 s):")
        for ranks in [2048, 16384] {
            for transport in [HeartbeatTransport.files, .network] {
                let r = try HeartbeatLoad.measure(ranks: ranks, transport: transport)
                print(String(format: "  %5d ranks, %-7@: %.3f CPU s/s, poll %.1f ms, %.0f files/poll, %.0f store rows/s, %.0f beats/s arrived; silent rank named %@",
                             r.ranks, transport.rawValue, r.cpuPerSecond, r.pollSeconds * 1000, r.filesPerPoll, r.rowsPerSecond, r.beatsPerSecond,
                             r.noticeLateSeconds.map { String(format: "%.2f s after its timeout", $0) } ?? "never"))
                fflush(stdout)
            }
        }
    }

    func run() throws {
        if !only.isEmpty {
            if only.contains("generation") { try benchGeneration() }
            if only.contains("tokenizer") { try benchTokenizer() }
            if only.contains("preparation") { try benchPreparation() }
            if only.contains("recompute") { try benchRecompute(cores: threads ?? ProcessInfo.processInfo.activeProcessorCount) }
            if only.contains("memory") { try benchMemory(cores: threads ?? ProcessInfo.processInfo.activeProcessorCount) }
            if only.contains("heartbeats") { try benchHeartbeats() }
            return
        }
        let threads = self.threads ?? ProcessInfo.processInfo.activeProcessorCount
        Matmul.threads = threads
        print("OpenBLAS kernels: \(Matmul.coreName), threads: \(Matmul.threads)")
        let peak = Throughput.sgemmGFLOPs()
        print(String(format: "sgemm 1024³: %.1f GFLOP/s", peak))
        let cases: [(String, String, Int)] = [("shakespeare-char", "shakespeare-char", 12), ("small-512", "small-512", 8)]
        for (label, preset, batch) in cases where model.isEmpty || model.contains(label) {
            var c = LlamaConfig.presets[preset]!
            c.vocabSize = 65
            let r = try Throughput.training(config: c, batch: batch, seqLen: c.maxSeqLen, threads: threads, steps: steps)
            print(String(format: "%@ (%d params, batch %d × %d): %.0f tokens/s, %.1f GFLOP/s = %.2f of sgemm, %.1f ms/step",
                         label, c.parameterCount, batch, c.maxSeqLen, r.tokensPerSecond, r.gflops, r.gflops / peak, r.secondsPerStep * 1000))
        }
        if layouts { try benchLayouts(cores: threads) }
        if checkpoints { try benchCheckpoints() }
        if generation { try benchGeneration() }
        if layouts { try benchRecompute(cores: threads) }
        if layouts { try benchMemory(cores: threads) }
        try benchTokenizer()
        try benchPreparation()
    }

    /// `herd data prepare` of 192 files of JSON lines (214 MB: Tiny
    /// Shakespeare's paragraphs in documents of 24, each file shuffled
    /// differently) with Llama 2's tokenizer at 1 and 2 MPI ranks, as a user
    /// runs it (mpirun included).
    func benchPreparation() throws {
        let model = "../shared/data/llama2-tokenizer.model", corpus = "../shared/data/tinyshakespeare.txt"
        guard FileManager.default.fileExists(atPath: model), let text = try? String(contentsOfFile: corpus, encoding: .utf8) else {
            return print("preparation: skipped (needs \(model) and \(corpus))")
        }
        let work = NSTemporaryDirectory() + "herd-bench-prep-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        // Web-sized documents (~4 KB: 24 paragraphs each, as RedPajama's
        // and Dolma's run), each file's drawn in its own order.
        let paragraphs = TokenizerThroughput.documents(of: text)
        var docs = stride(from: 0, to: paragraphs.count, by: 24).map { paragraphs[$0..<min($0 + 24, paragraphs.count)].joined(separator: "\n\n") }
        var bytes = 0, inputBytes = 0, r = SplitMix64(seed: 7)
        var inputs: [String] = []
        for f in 0..<192 {
            docs.shuffle(using: &r)
            var lines = Data()
            for d in docs { lines += try JSONSerialization.data(withJSONObject: ["text": d]); lines += Data("\n".utf8) }
            let path = "\(work)/part-\(f).jsonl"
            try lines.write(to: URL(fileURLWithPath: path))
            inputs.append(path)
            inputBytes += lines.count
            bytes += docs.reduce(0) { $0 + $1.utf8.count }
        }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        // 1, 2, 1, 2 ranks, the best of each: this machine's speed drifts
        // between runs. Start to finish (planning, mpirun's start, the
        // merge), and the tokenizing phase alone: the input bytes over the
        // slowest rank's time from its first unit to its last, as each rank
        // reports it.
        var rates = [0.0, 0.0], phase = [0.0, 0.0]
        for round in 0..<4 {
            let ranks = round % 2 + 1, out = "\(work)/out-\(round)"
            let start = DispatchTime.now().uptimeNanoseconds
            let res = try Spawn.capture(exe, ["data", "prepare"] + inputs + ["--tokenizer", model, "--out", out, "--no-dedup", "--ranks", String(ranks)])
            guard res.status == 0 else { return print("preparation: failed at \(ranks) rank(s): \(res.err.suffix(400))") }
            rates[ranks - 1] = max(rates[ranks - 1], Double(bytes) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
            // Each rank's lines: "rank R: unit k/n (...) done; X of T MB, Y MB/s, ...": X / Y is the time since its first unit started.
            var slowest = 0.0
            for line in res.out.split(separator: "\n") where line.hasPrefix("rank ") && line.contains(" done; ") {
                let fields = line.split(separator: " ")
                guard let of = fields.firstIndex(of: "of"), of > 0, of + 3 < fields.count, let mb = Double(fields[of - 1]),
                      let rate = Double(fields[of + 3].trimmingCharacters(in: .punctuationCharacters)), rate > 0 else { continue }
                slowest = max(slowest, mb / rate)
            }
            if slowest > 0 { phase[ranks - 1] = max(phase[ranks - 1], Double(inputBytes) / 1e6 / slowest) }
            try? FileManager.default.removeItem(atPath: out)
        }
        print(String(format: "preparation: herd data prepare, Llama 2 tokenizer, %.1f MB of JSON-lines text in %d files (%d documents of ~%.1f KB each), the better of two runs each:",
                     Double(bytes) / 1e6, inputs.count, inputs.count * docs.count, Double(bytes) / Double(inputs.count * docs.count) / 1e3))
        print(String(format: "  start to finish: 1 rank %.2f MB/s, 2 ranks %.2f MB/s (%.2f×)", rates[0] / 1e6, rates[1] / 1e6, rates[1] / rates[0]))
        print(String(format: "  tokenizing phase (input bytes, JSON included): 1 rank %.2f MB/s, 2 ranks %.2f MB/s (%.2f×)", phase[0], phase[1], phase[1] / max(phase[0], 1e-9)))
    }

    /// Llama 2's SentencePiece model on Tiny Shakespeare cut into documents,
    /// beside the SentencePiece library on the same documents when PYTHON has it.
    func benchTokenizer() throws {
        let model = "../shared/data/llama2-tokenizer.model", corpus = "../shared/data/tinyshakespeare.txt"
        guard FileManager.default.fileExists(atPath: model), let text = try? String(contentsOfFile: corpus, encoding: .utf8) else {
            return print("tokenizer: skipped (needs \(model) and \(corpus))")
        }
        let f = TokenizerThroughput.measure(tokenizer: try SentencePieceTokenizer(path: model), documents: TokenizerThroughput.documents(of: text))
        print(String(format: "tokenizer: Llama 2 SentencePiece, one thread, %d documents of Tiny Shakespeare (%.1f MB, %d tokens): %.2f MB/s cold, %.2f MB/s with its segment cache warm",
                     TokenizerThroughput.documents(of: text).count, Double(f.bytes) / 1e6, f.tokens, f.coldMBPerSecond, f.warmMBPerSecond))
        let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
        guard let r = try? Spawn.capture("/usr/bin/env", [python, "bench/sentencepiece_encode.py", model, corpus]), r.status == 0,
              let j = try? JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any],
              let mbs = j["mb_per_s"] as? Double else {
            return print("  (the sentencepiece library's figure skipped: \(python) cannot import sentencepiece; make bench PYTHON=/path/to/venv/bin/python)")
        }
        print(String(format: "  sentencepiece %@ (C++ encoder, one thread) on the same documents: %.2f MB/s; Herd/sentencepiece = %.2f× cold, %.2f× warm",
                     (j["version"] as? String) ?? "?", mbs, f.coldMBPerSecond / mbs, f.warmMBPerSecond / mbs))
    }

    @Flag(inversion: .prefixedNo, help: "Also time generation with the KV cache.")
    var generation = true

    /// Generation throughput on llama2.c's stories15M shape (random weights:
    /// the speed does not depend on them; vocabulary 32000, an untied
    /// output layer), greedy, 200 new tokens after 8-token prompts — what
    /// llama2.c's run.c is measured on beside it (docs/benchmarks.md). Best
    /// of three runs each: the machine is shared.
    func benchGeneration() throws {
        let cores = threads ?? ProcessInfo.processInfo.activeProcessorCount
        Matmul.threads = cores   // the training benches leave BLAS at 1
        var config = LlamaConfig.presets["stories15m"]!
        config.vocabSize = 32000
        let model = try Llama(config: config)
        model.initialize(seed: 1)
        let prompts = (0..<64).map { p in [TokenID(1)] + (0..<7).map { i -> TokenID in TokenID(100 + 37 * p + i) } }
        func rate(batch: Int, _ ps: [[TokenID]]) -> Double {
            (0..<3).map { _ in
                let meter = GenerationMeter()
                let g = Generator(model: model, batch: batch, threads: cores)
                g.meter = meter
                _ = g.generate(ps, options: SamplingOptions(temperature: 0, maxNewTokens: 200))
                return meter.tokensPerSecond
            }.max()!
        }
        let samples = prompts.prefix(8).flatMap { Array(repeating: $0, count: 8) }
        let one = rate(batch: 1, [prompts[0]])
        let shared = rate(batch: 64, samples)
        let distinct = rate(batch: 64, prompts)
        let refill = rate(batch: 16, prompts)
        let kernels = DecodeKernels.instructionSet.map { "\($0) kernels" } ?? "OpenBLAS"
        print(String(format: "generation stories15m shape (%d params, %d threads, %@), KV cache, greedy, 200 new tokens: 1 sequence %.0f tokens/s; 64 sequences (8 prompts × 8 samples) %.0f tokens/s (%.1f× one); 64 prompts %.0f tokens/s; 64 prompts through 16 slots %.0f tokens/s",
                     config.parameterCount, cores, kernels, one, shared, shared / one, distinct, refill))
        // The bound on batched decoding: every token's products (2 FLOPs per
        // multiplied weight; the embedding is a lookup) at sgemm's best rate.
        let productFLOPs = 2 * Double(config.matmulParameterCount), peak = Throughput.sgemmGFLOPs()
        print(String(format: "  64 sequences: %.0f GFLOP/s in products = %.2f of sgemm 1024³ (%.0f GFLOP/s on %d threads), whose rate would give %.0f tokens/s",
                     shared * productFLOPs / 1e9, shared * productFLOPs / 1e9 / peak, peak, cores, peak * 1e9 / productFLOPs))
        guard let isa = DecodeKernels.instructionSet else { return }
        // What the kernels bring on this machine: the same two runs through OpenBLAS (HERD_KERNELS=blas).
        DecodeKernels.instructionSet = nil
        defer { DecodeKernels.instructionSet = isa }
        let blasOne = rate(batch: 1, [prompts[0]]), blasShared = rate(batch: 64, samples)
        print(String(format: "  through OpenBLAS instead: 1 sequence %.0f tokens/s (kernels %.2f×), 64 sequences %.0f tokens/s (kernels %.2f×)",
                     blasOne, one / blasOne, blasShared, shared / blasShared))
    }

    @Flag(inversion: .prefixedNo, help: "Also time checkpoint saves and loads.")
    var checkpoints = true

    func benchCheckpoints() throws {
        let work = NSTemporaryDirectory() + "herd-bench-ckpt-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let level = CheckpointSettings().level
        let f = try CheckpointThroughput.measure(preset: "small-512", sequences: 8, steps: 4, level: level, workDir: work)
        let mb = Double(f.rawBytes) / 1e6
        print(String(format: "checkpoint small-512 (zstd level %d, one process): %.0f MB of state; save %.0f MB/s, load %.0f MB/s",
                     level, mb, mb / f.saveSeconds, mb / f.loadSeconds))
        for (k, v) in f.compressedBytes.sorted(by: { $0.key > $1.key }) {
            print(String(format: "  %@: %.1f MB → %.1f MB, ratio %.2f", k, Double(v.raw) / 1e6, Double(v.packed) / 1e6,
                         Double(v.raw) / Double(v.packed)))
        }
        print(String(format: "  asynchronous save: %.0f ms/step while it runs vs %.0f ms/step without = %.1f%% overhead over 4 steps",
                     f.stepSecondsWithAsyncSave * 1000, f.stepSeconds * 1000,
                     100 * (f.stepSecondsWithAsyncSave / f.stepSeconds - 1)))
    }

    @Flag(inversion: .prefixedNo, help: "Also time multi-process layouts under mpirun.")
    var layouts = true

    /// A byte-level corpus for the benches that run jobs, in `work`.
    func benchCorpus(in work: String) throws -> String {
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let corpus = work + "/corpus.txt"
        let source = ["../shared/data/tinyshakespeare.txt", "/usr/share/games/fortunes/fortunes"]
            .first { FileManager.default.fileExists(atPath: $0) }
        var text = source.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? ""
        while text.utf8.count < 400_000 { text += "the quick brown fox jumps over the lazy dog. " }
        try text.write(toFile: corpus, atomically: true, encoding: .utf8)
        return corpus
    }

    /// Activation recomputation on small-512 (8 layers, context 256, 8
    /// sequences a step): each mode's step time, and its peak resident
    /// memory against the activations the planner counts for it.
    func benchRecompute(cores: Int) throws {
        let work = NSTemporaryDirectory() + "herd-bench-recompute-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: work) }
        let corpus = try benchCorpus(in: work)
        var c = LlamaConfig.presets["small-512"]!
        c.vocabSize = ByteTokenizer().vocabSize
        let sequences = 8, steps = 4, layout = LayoutThroughput.Layout(data: 1, tensor: 1, threads: cores)
        let split = BatchThreads.threadCount(sequences: sequences, threads: cores, unit: 1)
        var rows: [(ActivationCheckpoint, RunEvent, Double)] = []
        for mode in ActivationCheckpoint.allCases {
            let end = try LayoutThroughput.run(preset: "small-512", layout: layout, sequences: sequences, steps: steps, corpus: corpus,
                                               workDir: work, checkpoint: mode)
            let planned = Double(split * Activations.floatCount(config: c, batch: sequences / split, seqLen: c.maxSeqLen, checkpoint: mode)) * 4
            rows.append((mode, end, planned))
        }
        guard let base = rows.first, let baseTime = base.1.trainSeconds, let basePeak = base.1.peakResidentBytesMax else { return }
        print("activation recomputation, small-512 (8 layers, 8 × 256 tokens a step, \(split) batch thread(s), \(steps) steps):")
        for (mode, end, planned) in rows {
            let peak = Double(end.peakResidentBytesMax ?? 0)
            print(String(format: "  %@: %.0f tokens/s, step time %.2f× none's; peak resident %.0f MB (%+.0f MB against none; the plan's activations %.0f MB, %+.0f MB)",
                         mode.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0), end.tokensPerSecond ?? 0, (end.trainSeconds ?? 0) / baseTime,
                         peak / 1e6, (peak - Double(basePeak)) / 1e6, planned / 1e6, (planned - base.2) / 1e6))
        }
    }

    /// The plan's bytes per rank against every rank's measured peak, over
    /// MemoryAgreement's eight layouts of a 106M-parameter model.
    func benchMemory(cores: Int) throws {
        let work = NSTemporaryDirectory() + "herd-bench-memory-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: work) }
        let corpus = try benchCorpus(in: work)
        print("memory per rank, planned against measured peak resident (\(MemoryAgreement.shape.parameterCount) parameters, 2 × 64 tokens a micro-batch, \(cores) cores):")
        for c in MemoryAgreement.cases {
            let r = try MemoryAgreement.measure(c, cores: cores, corpus: corpus, workDir: work)
            print(String(format: "  %@: planned %.3f GB, measured %.3f–%.3f GB (%.1f%% off at worst), %.0f tokens/s; planned = %@",
                         c.description.padding(toLength: 30, withPad: " ", startingAt: 0), r.planned.total / 1e9,
                         r.measuredMin / 1e9, r.measuredMax / 1e9, 100 * r.error, r.tokensPerSecond, r.planned.parts))
        }
    }

    /// Data parallelism's scaling on this machine, and tensor parallelism's
    /// per-step cost, with real mpirun jobs on byte-level text.
    func benchLayouts(cores: Int) throws {
        let work = NSTemporaryDirectory() + "herd-bench-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: work) }
        let corpus = try benchCorpus(in: work)
        typealias L = LayoutThroughput.Layout
        func run(_ preset: String, _ l: L, _ sequences: Int, _ steps: Int) throws -> (tokensPerSecond: Double, secondsPerStep: Double) {
            try LayoutThroughput.measure(preset: preset, layout: l, sequences: sequences, steps: steps, corpus: corpus, workDir: work)
        }
        let one = try run("shakespeare-char", L(data: 1, tensor: 1, threads: 1), 12, 60)
        let threaded = try run("shakespeare-char", L(data: 1, tensor: 1, threads: cores), 12, 60)
        let dp2 = try run("shakespeare-char", L(data: 2, tensor: 1, threads: cores), 12, 60)
        print(String(format: "shakespeare-char, byte vocab: dp=1 one core %.0f tokens/s; dp=1 %d batch threads %.0f; dp=2 mpirun ranks %.0f = %.2f scaling efficiency vs 2 × one core",
                     one.tokensPerSecond, cores, threaded.tokensPerSecond, dp2.tokensPerSecond, dp2.tokensPerSecond / (2 * one.tokensPerSecond)))
        let tp1 = try run("small-512", L(data: 1, tensor: 1, threads: cores), 8, 4)
        let tp2 = try run("small-512", L(data: 1, tensor: 2, threads: cores), 8, 4)
        print(String(format: "small-512, byte vocab, batch 8 × 256: tp=1 %.0f ms/step; tp=2 mpirun ranks %.0f ms/step = %.2f × the tp=1 step",
                     tp1.secondsPerStep * 1000, tp2.secondsPerStep * 1000, tp2.secondsPerStep / tp1.secondsPerStep))
        try benchAcrossNodes(work: work, corpus: corpus, cores: cores)
    }

    /// Data parallelism across two simulated nodes (scripts/herd-sim: TCP
    /// between network namespaces) against the same two ranks on one node
    /// (shared memory), for small-512. Needs root and the script.
    func benchAcrossNodes(work: String, corpus: String, cores: Int) throws {
        let sim = FileManager.default.currentDirectoryPath + "/scripts/herd-sim"
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: sim) else {
            return print("small-512 data parallelism across simulated nodes: skipped (needs root and scripts/herd-sim, run from the repository)")
        }
        var env = ProcessInfo.processInfo.environment
        env["HERD_SIM_DIR"] = work + "/sim"
        env["HERD_SIM_PREFIX"] = "hb\(getpid())"
        env["HERD_HOME"] = work + "/herd-home"
        guard (try? Spawn.run(sim, ["up", "2"], environment: env, log: work + "/sim.log")) == 0 else {
            _ = try? Spawn.run(sim, ["down"], environment: env, log: work + "/sim.log")
            return print("small-512 data parallelism across simulated nodes: skipped (network namespaces not permitted: \(work)/sim.log)")
        }
        defer { _ = try? Spawn.run(sim, ["down"], environment: env, log: work + "/sim.log") }
        let cluster = work + "/sim-2.yaml"
        try """
            name: sim-2
            launcher: mpirun
            launcher_prefix: [\(sim), exec, head]
            environment: {OMPI_MCA_plm_rsh_agent: "\(sim) rsh", HERD_SIM_DIR: \(env["HERD_SIM_DIR"]!), HERD_SIM_PREFIX: \(env["HERD_SIM_PREFIX"]!)}
            nodes:
              - {hosts: [node1, node2], slots: 1, cores: \(max(1, cores / 2)), memory_gb: 8, peak_tflops: 0.02}
            """.write(toFile: cluster, atomically: true, encoding: .utf8)
        let l = LayoutThroughput.Layout(data: 2, tensor: 1, threads: max(1, cores / 2))
        let local = try LayoutThroughput.measure(preset: "small-512", layout: l, sequences: 8, steps: 6, corpus: corpus, workDir: work)
        let nodes = try LayoutThroughput.measure(preset: "small-512", layout: l, sequences: 8, steps: 6, corpus: corpus, workDir: work,
                                                 cluster: cluster, environment: env)
        print(String(format: "small-512, batch 8 × 256, dp=2: one node %.0f ms/step; two simulated nodes (TCP) %.0f ms/step = %.2f × the one-node step",
                     local.secondsPerStep * 1000, nodes.secondsPerStep * 1000, nodes.secondsPerStep / local.secondsPerStep))
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The libraries herd runs on.")

    func run() throws {
        print(Libraries.openBLAS)
        print("OpenBLAS kernels: \(Matmul.coreName)")
        print(Libraries.mpi)
        print(Libraries.zstd)
    }
}
