import ArgumentParser
import Foundation
import Herd

extension AnnotatorOptions {
    /// The command, or a clear error when none was given.
    func required(_ context: String = "") -> [String] {
        guard !words.isEmpty else { fail(ValidationError("\(context)give the annotator command after --, e.g. -- herd rlhf annotator")) }
        return words
    }
}

/// `herd rlhf …`: the steps of the Llama 2-Chat loop that are not training jobs.
struct RLHF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rlhf", abstract: "The RLHF loop: the iteration scheduler, its steps, and the synthetic world to run it on here.",
        subcommands: [Launch.self, Resume.self, Status.self, Report.self, Annotate.self, RMAccuracy.self, RMHealth.self, GAtt.self, Sample.self, Select.self,
                      Evaluate.self, Rate.self, World.self, WorldAnnotator.self])

    struct Select: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The best sample per prompt, from this iteration's bag (or from every bag, from V4 on), written as demonstrations to fine-tune on.")
        @OptionGroup var options: SelectOptions

        func run() throws {
            let o = options, prompts = o.prompts, iteration = o.iteration, out = o.out, byAnnotator = o.byAnnotator
            let annotator = o.annotator, earlierBag = o.earlierBag
            guard let n = Selection.number(iteration) else { fail(ValidationError("--iteration: expected V1, V2, ..., got \(iteration)")) }
            var s = Selection(prompts: prompts, bag: o.bag, iteration: n)
            s.earlierBags = earlierBag
            s.poolFrom = o.poolFrom
            if let file = o.demonstrations {
                guard o.demonstrationCount >= 1 else { fail(ValidationError("--demonstration-count: at least 1 with --demonstrations, got \(o.demonstrationCount)")) }
                s.demonstrations = (file, o.demonstrationCount)
            }
            let command = byAnnotator ? annotator.required("--by-annotator: ") : []
            do {
                if byAnnotator {
                    s.ratings = try SampleRatings.rate(bags: s.bags, prompts: prompts, annotator: command, timeout: annotator.timeout) {
                        print("herd: \($0)"); fflush(stdout)
                    }
                }
                let count = try s.write(to: out)
                print("\(iteration): \(count) selections from \(s.pools ? "\(1 + earlierBag.count) bags (pooled)" : "this iteration's bag") written to \(out)"
                      + (s.demonstrations.map { ", then \($0.count) earlier demonstrations from \($0.file)" } ?? ""))
            } catch { fail(error) }
        }
    }

    struct Sample: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rejection sampling: K answers per prompt from a policy, scored by both reward models, written to a bag; prints the paper's Figure 7.")
        @OptionGroup var options: SampleOptions
        @Flag(help: .hidden) var mpiWorker = false

        func run() throws {
            let o = options, k = o.k, ranks = o.ranks, chunk = o.chunk, iteration = o.iteration
            guard k >= 1 else { fail(ValidationError("--k: at least 1")) }
            guard ranks >= 1, chunk >= 1, o.tensor >= 1 else { fail(ValidationError("--ranks, --tensor and --chunk: at least 1")) }
            guard ranks % o.tensor == 0 else { fail(ValidationError("--tensor: must divide --ranks (\(ranks)), got \(o.tensor)")) }
            if ranks > 1 && !mpiWorker {
                // The same command as mpirun ranks; rank 0 prints the table.
                do { try MPIRanks.relaunch(ranks) } catch { fail(error) }
                return
            }
            var step = RejectionSampling(policy: o.policy, helpfulness: o.helpfulness, safety: o.safety, prompts: o.prompts, bag: o.bag,
                                         iteration: iteration)
            step.k = k
            step.temperature = o.temperature
            step.maxNewTokens = o.maxNewTokens
            step.seed = o.seed
            step.chunk = chunk
            if mpiWorker {
                do { step.groups = try GenerationGroups(world: MPIRanks.world(), tensor: o.tensor) } catch { fail(error) }
            }
            let rank = step.groups.world.rank
            let samples: [SampleRecord]
            do { samples = try step.run { if rank == 0 { print("herd: \($0)"); fflush(stdout) } } } catch {
                if mpiWorker { MPIRuntime.abort(rank: rank, reason: "\(error)") }
                fail(error)
            }
            if mpiWorker { MPIRuntime.finish() }
            guard rank == 0 else { return }
            print("Figure 7 (\(iteration), \(Set(samples.map(\.promptID)).count) prompts): mean over prompts of the max and median reward among K samples")
            for row in RejectionSampling.figure7(samples, k: k) {
                print(String(format: "  K = %3d: max %+.4f  median %+.4f", row.k, row.meanMax, row.meanMedian))
            }
        }
    }

    struct Rate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Have the annotator rate a policy's answers to held-out prompts: helpfulness (1–7) and safety violations.")
        @Option(help: "The policy: a run or checkpoint directory, or a Hugging Face directory.") var policy: String
        @Option(help: "Prompts, JSON lines ({id, dialogue, safety}).") var prompts: String
        @Option(help: "Sampling temperature (0: greedy).") var temperature: Double = 0
        @Option(help: "Longest answer, in tokens.") var maxNewTokens: Int = 64
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var annotator: AnnotatorOptions

        func run() throws {
            var step = RatingStep(policy: policy, prompts: prompts, annotator: annotator.required())
            step.temperature = temperature
            step.maxNewTokens = maxNewTokens
            step.timeout = annotator.timeout
            let s: RatingStep.Summary
            do { s = try step.run() } catch { fail(error) }
            if json {
                return print(String(decoding: try JSONLines.line(s).dropLast(), as: UTF8.self))
            }
            print(String(format: "%d prompts: mean helpfulness %.2f of 7, %.1f%% rated 6 or 7, %.1f%% safety violations%@", s.prompts,
                         s.meanHelpfulness, 100 * s.helpfulShare, 100 * s.violationShare,
                         s.violationShareOnSafetyPrompts.map { String(format: " (%.1f%% on the prompts tagged safety)", 100 * $0) } ?? ""))
        }
    }

    struct Annotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sample two answers per prompt from a policy, have the annotator compare them, and append the comparisons to the pool as a batch.")
        @OptionGroup var options: AnnotateOptions
        @Flag(help: .hidden) var mpiWorker = false

        func run() throws {
            let o = options, annotator = o.annotator, pool = o.pool, batch = o.batch
            let t = o.temperatures.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard t.count == 2 else { fail(ValidationError("--temperatures: expected two numbers, e.g. 0.7,1.0")) }
            var step = AnnotationStep(policy: o.policy, prompts: o.prompts, pool: pool, batch: batch, annotator: annotator.required())
            step.temperatures = (t[0], t[1])
            step.maxNewTokens = o.maxNewTokens
            step.timeout = annotator.timeout
            step.seed = o.seed
            do {
                try MPIRanks.leading(tensor: o.tensor, mpiWorker: mpiWorker) { leader in
                    step.leader = leader
                    let r = try step.run { print("herd: \($0)"); fflush(stdout) }
                    print("batch \(batch): \(r.labelled) comparisons labelled and appended to \(pool) (\(r.skipped) were already there)")
                }
            } catch {
                fail(ValidationError("\(error) — the comparisons labelled so far are in \(pool); run the same command again to continue batch \(batch)"))
            }
        }
    }

    struct World: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the synthetic world's files: demonstrations (some flawed), prompts, held-out prompts.")
        @Option(help: "The directory to write.") var out: String
        @Option(help: "Seed.") var seed: UInt64 = 1
        @Option(help: "Demonstrations.") var demonstrations: Int = 2000
        @Option(help: "Prompts for annotation and sampling.") var prompts: Int = 1500
        @Option(help: "Held-out prompts for evaluation.") var heldOut: Int = 200
        @Option(help: "Share of demonstrations that are wrong or sloppy.") var flawed: Double = 0.15
        @Option(help: "The harmless task families, comma-separated (capitals, twice, successor, sum).") var families: String = "capitals,twice,successor,sum"
        @Option(help: "Ghost Attention's world: single-turn demonstrations under a standing instruction.") var instructed: Int = 0
        @Option(help: "... multi-turn demonstrations (2 to --turns turns, no instruction).") var multiTurn: Int = 0
        @Option(help: "... dialogues under a standing instruction for the GAtt stage (dialogues.jsonl).") var dialogues: Int = 0
        @Option(help: "... held-out ones for evaluation (dialogues-heldout.jsonl).") var heldOutDialogues: Int = 0
        @Option(help: "... user turns per dialogue.") var turns: Int = 4

        func run() throws {
            let chosen = try families.split(separator: ",").map { name -> SyntheticWorld.Family in
                guard let f = SyntheticWorld.Family(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--families: unknown family \"\(name)\"; expected some of: capitals, twice, successor, sum")
                }
                return f
            }
            guard !chosen.isEmpty else { throw ValidationError("--families: at least one family") }
            let f = try SyntheticWorld.write(to: out, seed: seed, demonstrations: demonstrations, prompts: prompts,
                                             heldOutPrompts: heldOut, flawedShare: flawed, families: chosen, instructed: instructed,
                                             multiTurn: multiTurn, dialogues: dialogues, heldOutDialogues: heldOutDialogues, turns: turns)
            if let d = f.dialogues, let h = f.heldOutDialogues { print("and Ghost Attention's dialogues \(d), \(h)") }
            let probe = try SyntheticWorld.writeProbe(to: out, seed: seed)
            print("wrote \(f.demonstrations), \(f.prompts), \(f.heldOutPrompts), \(f.description)")
            print("and the checkability probe \(probe.pool) (herd rlhf rm-accuracy --pool \(probe.pool) --prompts \(probe.prompts) --batch capitals|twice|case|successor|sum)")
        }
    }

    struct WorldAnnotator: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "annotator", abstract: "The synthetic world's scripted annotator: the annotator protocol on stdin/stdout.")
        @Option(help: "Share of comparisons whose choice is flipped (annotators disagree).") var noise: Double = 0.05
        @Option(help: "Seed of the noise.") var seed: UInt64 = 7

        func run() throws {
            let a = ScriptedAnnotator(noise: noise, seed: seed)
            a.serve()
        }
    }
}
