import Foundation
import Yams

/// `herd plan PIPELINE --cluster C`: every stage of every iteration priced
/// before anything runs — tokens generated or trained on, FLOPs, ranks,
/// memory per rank, and time on the cluster at its utilization. Training
/// stages are planned as the jobs they are (PlanReport); generation
/// (annotation, rejection sampling, evaluation) and reward scoring are
/// priced here, on tensor-parallel groups sized for generation — the
/// smallest group whose slots hold the weights and the KV cache — rather
/// than the training layout, as the paper found it had to.
public struct PipelinePlan {
    public struct Stage: Sendable {
        public var id: String
        public var ranks: Int
        public var bytesPerRank: Double
        public var tokens: Double
        public var flops: Double
        public var seconds: Double
        public var note: String
        /// A PPO stage's phases, memory and time per iteration.
        public var ppo: PPOPlan? = nil
    }

    /// The paper's seconds per PPO iteration at 70B (section 3.2.3, with FSDP).
    public static let paperPPOSeconds70B = 330.0

    public var stages: [Stage] = []
    /// The 70B policy's PPO iteration beside the paper's.
    public var comparison: String?
    public let manifest: PipelineManifest
    public let cluster: ClusterSpec

    public static func make(manifest m: PipelineManifest, cluster c: ClusterSpec) throws -> PipelinePlan {
        var plan = PipelinePlan(manifest: m, cluster: c)
        let graph = PipelineGraph(manifest: m)
        let sizes = m.planning
        func shape(_ path: String, _ preset: String?, _ field: String) throws -> LlamaConfig {
            if FileManager.default.fileExists(atPath: path) { return try ModelFiles.config(path) }
            guard let p = preset, var cfg = LlamaConfig.presets[p] else {
                throw ManifestError(file: m.file, field: field, message: "\(path) is not on this machine: name its shape with model: PRESET to plan")
            }
            if cfg.vocabSize == 0 { cfg.vocabSize = 256 }
            return cfg
        }
        let sampler = try shape(m.sampler.initial, m.sampler.preset, "policies (the sampler's model)")
        var reward = try shape(m.rewardInit, m.rewardPreset, "reward_models.model")
        reward.scalarHead = true
        func lines(_ path: String) -> Int? { (try? PipelineGraph.lines(path).count) }
        let samplePrompts = sizes.samplePrompts ?? m.sampleCount ?? lines(m.samplePrompts) ?? 0
        let heldOut = sizes.heldOut ?? lines(m.heldOutPrompts) ?? 0
        guard samplePrompts > 0, heldOut > 0 else {
            throw ManifestError(file: m.file, field: "plan", message: "the prompt files are not on this machine: give plan.sample_prompts and plan.held_out")
        }
        let group = c.nodes[0]
        let peak = group.peakTFLOPs * 1e12 * c.utilization
        let capacity = (group.deviceMemoryGB ?? group.memoryGB / Double(group.slots)) * 1e9
        let context = Double(sizes.promptTokens + sizes.answerTokens)

        /// The smallest tensor-parallel group (within a node) that holds a
        /// model's fp32 weights and a generation batch's KV cache.
        func groupSize(_ model: LlamaConfig) -> (tp: Int, bytes: Double) {
            let weights = 4 * Double(model.parameterCount)
            let kv = Double(sizes.generationBatch) * context * 2 * Double(model.layers * model.kvDim) * 4
            var tp = 1
            while tp < group.slots && (weights + kv) / Double(tp) > capacity { tp *= 2 }
            return (tp, weights + kv)
        }
        /// Generating `sequences` answers with `model` on every slot of the cluster.
        func generation(_ id: String, _ model: LlamaConfig, sequences: Double, note: String) -> Stage {
            let (tp, need) = groupSize(model)
            let prefill = sequences * Double(sizes.promptTokens), generated = sequences * Double(sizes.answerTokens)
            let perToken = 2 * Double(model.matmulParameterCount) + 4 * Double(model.layers * model.dim) * context / 2
            let flops = perToken * (prefill + generated)
            let fits = need / Double(tp) <= capacity
            return Stage(id: id, ranks: c.slots, bytesPerRank: need / Double(tp), tokens: generated, flops: flops,
                         seconds: flops / (Double(c.slots) * peak),
                         note: "\(note); generation groups of \(tp) slots" + (fits ? "" : String(format: " — does not fit: %.0f GB per slot", need / Double(tp) / 1e9)))
        }
        /// Both reward models reading `sequences` whole dialogues.
        func scoring(_ sequences: Double) -> (flops: Double, tokens: Double) {
            let tokens = sequences * context
            return (2 * 2 * Double(reward.matmulParameterCount) * tokens, 2 * tokens)
        }
        /// A training stage as `herd plan` lays it out. The job's text may carry a
        /// stand-in shape (the checkpoint is read for `model`, not from the job).
        func job(_ id: String, _ text: String, steps: Int?, model: LlamaConfig, note: String) throws -> Stage {
            let job = try JobManifest.parse(yaml: text, file: "\(m.file) (\(id))", overrides: .init(steps: steps.map { max(1, $0) }, planOnly: true))
            let r = try PlanReport.make(manifest: job, model: model, cluster: c, rewardModel: reward, promptTokens: sizes.promptTokens)
            let ppo = r.ppo.map { p in
                String(format: "; %.1f s an iteration: %@; GB a rank by phase %@", p.secondsPerIteration, p.phaseSeconds,
                       PPOPlan.Phase.allCases.map { String(format: "%.1f", p.memory($0).total / 1e9) }.joined(separator: ", "))
            } ?? ""
            return Stage(id: id, ranks: r.plan.world, bytesPerRank: r.totalBytesPerRank, tokens: r.totalTokens,
                         flops: r.flopsPerToken * r.totalTokens, seconds: r.secondsAtUtilization,
                         note: note + ppo + (r.memoryProblem == nil ? "" : String(format: " — does not fit: %.0f GB per rank", r.totalBytesPerRank / 1e9)),
                         ppo: r.ppo)
        }

        var pool = Double(sizes.initialPool)
        for it in m.iterations {
            let n = it.number, name = it.name
            plan.stages.append(generation("\(name)/annotate", sampler, sequences: 2 * Double(it.annotate),
                                          note: "\(it.annotate) prompts × 2 answers from the sampler"))
            pool += Double(it.annotate)
            if n > 1 {
                let s = scoring(2 * Double(it.annotate))
                let g = groupSize(reward)
                plan.stages.append(Stage(id: "\(name)/rm-on-policy", ranks: c.slots, bytesPerRank: g.bytes / Double(g.tp), tokens: s.tokens,
                                         flops: s.flops, seconds: s.flops / (Double(c.slots) * peak),
                                         note: "both reward models on the new batch; groups of \(g.tp) slots"))
            }
            for objective in ["helpfulness", "safety"] {
                let t = m.rewardJobs[objective] ?? [:]
                let pairs = Self.number(t, "batch", "pairs") ?? 512
                let val = Self.number(t, "data", "val_fraction") ?? 0.05
                let steps = Self.number(t, "steps").map(Int.init) ?? Int((Self.number(t, "epochs") ?? 1) * pool * (1 - val) / pairs + 0.999)
                plan.stages.append(try job("\(name)/rm-\(objective)", graph.rewardJob(objective: objective, iteration: it, standIn: m.rewardPreset ?? PipelineGraph.probeShape),
                                           steps: steps, model: reward, note: String(format: "%.0f comparisons in the pool (the safety model trains on a part: an upper bound)", pool)))
            }
            var sample = generation("\(name)/sample", sampler, sequences: Double(samplePrompts * it.k),
                                    note: "\(samplePrompts) prompts × K \(it.k), then both reward models score every sample")
            let s = scoring(Double(samplePrompts * it.k))
            sample.flops += s.flops
            sample.seconds += s.flops / (Double(c.slots) * peak)
            plan.stages.append(sample)
            if it.extraStages.contains("gatt"), let g = m.gatt {
                let dialogues = sizes.gattDialogues ?? lines(g.dialogues) ?? 0
                guard dialogues > 0 else {
                    throw ManifestError(file: m.file, field: "plan.gatt_dialogues", message: "\(g.dialogues) is not on this machine: give the number of Ghost Attention dialogues")
                }
                plan.stages.append(generation("\(name)/gatt", sampler, sequences: Double(dialogues * sizes.gattTurns),
                                              note: "\(dialogues) dialogues × \(sizes.gattTurns) turns, the instruction on every turn"))
            }
            for p in m.policies {
                var t = m.finetuneJob
                for (k, v) in p.finetune { t[k] = v }
                for (k, v) in it.finetune { t[k] = v }
                let seqs = Self.number(t, "batch", "sequences") ?? 64
                let steps = Self.number(t, "steps").map(Int.init) ?? Int((Self.number(t, "epochs") ?? 2) * Double(samplePrompts) / seqs + 0.999)
                let model = try shape(p.initial, p.preset, "policies (\(p.name))")
                plan.stages.append(try job("\(name)/finetune-\(p.name)", graph.finetuneJob(policy: p, iteration: it, standIn: p.preset ?? PipelineGraph.probeShape),
                                           steps: steps, model: model, note: "\(samplePrompts) selections, one a sequence (an upper bound)"))
            }
            if it.extraStages.contains("ppo") {
                for p in m.policies {
                    let model = try shape(p.initial, p.preset, "policies (\(p.name))")
                    let text = graph.ppoJob(policy: p, iteration: it, standIn: p.preset ?? PipelineGraph.probeShape)
                    let apart = text.contains("placement: separate")
                    plan.stages.append(try job("\(name)/ppo-\(p.name)", text, steps: nil, model: model,
                                               note: "PPO: answers of max_new_tokens; policy, value model" + (apart
                                                   ? " on the trainers, reference and both reward models on ranks of their own"
                                                   : ", reference and both reward models on every rank")))
                    if model.parameterCount == LlamaConfig.presets["llama2-70b"]?.parameterCount, let last = plan.stages.last {
                        plan.comparison = plan.paperComparison(last)
                    }
                }
            }
            var evaluation = Stage(id: "\(name)/evaluate", ranks: c.slots, bytesPerRank: 0, tokens: 0, flops: 0, seconds: 0,
                                   note: "\(heldOut) held-out prompts, greedy, \(m.evaluationSamples) at T = 1 and the SFT reference, per size")
            for p in m.policies {
                let g = generation("", try shape(p.initial, p.preset, "policies (\(p.name))"), sequences: Double(2 + m.evaluationSamples) * Double(heldOut), note: "")
                evaluation.tokens += g.tokens
                evaluation.flops += g.flops
                evaluation.seconds += g.seconds
                evaluation.bytesPerRank = max(evaluation.bytesPerRank, g.bytesPerRank)
            }
            plan.stages.append(evaluation)
        }
        return plan
    }

    /// A number in a job template, by its path of keys.
    static func number(_ m: Yams.Node.Mapping, _ keys: String...) -> Double? {
        var node: Yams.Node? = .mapping(m)
        for k in keys { node = node?.mapping?[k] }
        return node?.float ?? node?.int.map(Double.init)
    }

    public var text: String {
        var s = "\(manifest.name) on \(cluster.name): \(manifest.iterations.count) iterations, sampler \(manifest.sampler.name), "
        s += "distilled into \(manifest.policies.filter { !$0.sampler }.map(\.name).joined(separator: ", ")); "
        s += String(format: "time at %.0f%% of peak (generation priced as compute: a lower bound, decoding is limited by memory bandwidth%@)\n", cluster.utilization * 100,
                    stages.contains { $0.ppo?.bandwidthBound == true } ? "; PPO's rollouts priced at that share of it" : "")
        s += "stage".padding(toLength: 24, withPad: " ", startingAt: 0) + "  ranks   GB/rank     tokens       FLOPs  time       what\n"
        var total = 0.0, hours = 0.0
        for st in stages {
            s += st.id.padding(toLength: 24, withPad: " ", startingAt: 0)
            s += String(format: " %6d %9.1f %10.3g %11.3g ", st.ranks, st.bytesPerRank / 1e9, st.tokens, st.flops)
            s += formatDuration(st.seconds).padding(toLength: 9, withPad: " ", startingAt: 0) + "  \(st.note)\n"
            total += st.seconds
            hours += st.seconds * Double(st.ranks) / 3600
        }
        s += String(format: "in all: %@ on the cluster, %.0f slot-hours\n", formatDuration(total), hours)
        if let comparison { s += comparison + "\n" }
        return s
    }

    /// A 70B PPO stage's iteration beside the paper's ≈330 s, and what the difference comes from.
    func paperComparison(_ st: Stage) -> String? {
        guard let p = st.ppo else { return nil }
        let u = cluster.utilization * 100
        var s = String(format: "%@: %.1f s a PPO iteration (%@) on %d ranks; the paper: ≈%.0f s (FSDP; its ranks not given). ",
                       st.id, p.secondsPerIteration, p.phaseSeconds, st.ranks, Self.paperPPOSeconds70B)
        s += p.zeroTraffic > 0
            ? String(format: "The difference: communication, not priced (ZeRO-3 moves about %.3g TB per rank an iteration)", p.zeroTraffic / 1e12)
            : "The difference: communication, not priced"
        s += String(format: "; every phase at %.0f%% of the device's peak (%@); answers all max_new_tokens long after prompts of %d tokens (the paper gives neither).",
                    u, p.bandwidthBound ? "its memory bandwidth for decoding, FLOP/s for the rest" : "FLOP/s", manifest.planning.promptTokens)
        return s
    }

}
