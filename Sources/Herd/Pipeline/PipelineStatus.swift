import Foundation

/// `herd rlhf status`: every iteration's graph, each stage with its state,
/// progress and duration, read from the state file and the stages' own
/// outputs (the pool's batch, the bag, a job's events).
public enum PipelineStatus {
    public static func render(graph: PipelineGraph, state: PipelineState?, now: Double = Date().timeIntervalSince1970) throws -> String {
        var out = "\(graph.manifest.name) (\(graph.manifest.file)): \(graph.manifest.selection == .annotator ? "selection by the annotator (control arm)" : "selection by the reward models"), run directory \(graph.manifest.output)\n"
        if let t = state?.target { out += "launched through \(PipelineGraph.iterationName(t))\(state?.cluster.map { " on cluster \($0)" } ?? "")\n" }
        var total = 0.0
        let promotions = try graph.promotions(through: graph.manifest.iterations.count)
        let figures = try PipelineSnapshot.figures(graph: graph)
        for n in 0...graph.manifest.iterations.count {
            let stages = try graph.stages(n)
            let spent = stages.compactMap { state?.stages[$0.id]?.seconds }.reduce(0, +)
            total += spent
            out += "\n\(PipelineGraph.iterationName(n)): " + stages.map(\.name).joined(separator: " → ")
            out += spent > 0 ? String(format: "  (%.1f s of finished stages)\n", spent) : "\n"
            for s in stages {
                let r = state?.stages[s.id]
                let phase: String
                var seconds: Double?
                switch r?.phase {
                case nil: phase = "pending"
                case .finished?: phase = "finished"; seconds = r?.seconds
                case .failed?: phase = "failed (status \(r?.status ?? -1))"; seconds = r?.seconds
                case .running?:
                    let alive = r?.pid.map { Spawn.isAlive(Int($0)) } ?? false
                    phase = alive ? "running" : "stopped (its scheduler died; herd rlhf resume)"
                    seconds = alive ? now - (r?.started ?? now) : nil
                }
                let progress = r == nil ? "" : Self.progress(s.progress)
                out += "  " + pad(s.name, 18) + pad(phase, 12) + " " + pad(progress, 18)
                out += seconds.map { String(format: " %8.1f s", $0) } ?? ""
                if let a = r?.attempts, a > 1 { out += "  (\(a) attempts)" }
                out += "\n"
            }
            for r in figures?.policies ?? [] where r.iteration == PipelineGraph.iterationName(n) {
                out += "  \(r.policy): right \(PipelineReport.cell(r.right, r.interval(.right))), at T = 1 \(PipelineReport.cell(r.rightSampled, r.interval(.rightSampled)))"
                out += ", violations \(PipelineReport.cell(r.violations, r.interval(.violations))) (95% intervals)\n"
            }
            if n > 0, let data = FileManager.default.contents(atPath: graph.rewardHealth(n)),
               let h = try? JSONDecoder().decode(RewardModelHealth.self, from: data) {
                out += "  reward models: " + (h.healthy ? "healthy" : (h.selectionByAnnotator ? "below their thresholds, the annotator chose: " : "below their thresholds: ")
                                                + h.failures.joined(separator: "; ")) + "\n"
            }
            if n > 0, let record = promotions[n - 1] {
                for v in record.verdicts {
                    out += "  gate, \(v.policy): " + (v.promoted ? "promoted over \(v.incumbent)" : "not promoted, \(v.incumbent)'s stays") + " — \(v.reason)\n"
                }
            }
        }
        if promotions.first.map({ $0 != nil }) ?? false {
            out += "\nthe pipeline's policies (the last promoted of each size): " + graph.promoted(promotions).map(\.text).joined(separator: ", ") + "\n"
        }
        if total > 0 { out += String(format: "\nfinished stages: %.1f s in all\n", total) }
        return out
    }

    /// Pads to a width, never cutting.
    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

    static func progress(_ p: PipelineStage.Progress) -> String {
        switch p {
        case .none: return ""
        case let .lines(path, batch, total):
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "0/\(total)" }
            let tag = batch.map { "\"batch\":\"\($0)\"" }
            let n = text.split(separator: "\n").filter { line in tag.map { line.contains($0) } ?? true }.count
            return "\(n)/\(total)"
        case .steps(let run):
            guard let events = try? RunDirectory(run).readEvents(), !events.isEmpty else { return "" }
            var step = 0, steps = 0
            for e in events {
                if e.event == .start, let s = e.steps { steps = s }
                if let s = e.step, [.step, .end, .checkpoint, .resume].contains(e.event) { step = max(step, s) }
            }
            return "step \(step)/\(steps)"
        }
    }
}
