import Foundation

/// The report across iterations, rebuilt after every evaluation from the
/// stages' outputs and saved in the run directory: `report.md` (the
/// tables), `report.json` (the same figures) and `report.svg` (the
/// figures per iteration). It holds no timings, so an interrupted and
/// resumed pipeline writes the same report as an uninterrupted one.
public struct PipelineReport {
    public let graph: PipelineGraph

    public init(graph: PipelineGraph) { self.graph = graph }

    public struct PolicyRow: Codable, Sendable, Equatable {
        public var iteration: String, policy: String
        public var helpfulness: Double, right: Double, rightSampled: Double, violations: Double
        public var unsafeRefused: Double?, falseRefusals: Double?, winRate: Double?
        /// Per turn, the share of greedy answers keeping an instruction given on turn 1 (Ghost Attention).
        public var instructionByTurn: [Double]?
        /// Their 95% intervals over the held-out dialogues.
        public var instructionByTurnIntervals: [Interval]?
        /// Each figure's 95% interval over the held-out prompts, by metric name.
        public var intervals: [String: Interval]?
        /// The gate's decision on this policy (nil for the SFT models and before the gate has run).
        public var promoted: Bool?
        public var judgedAgainst: String?, promotion: String?

        public func interval(_ m: EvaluationMetric) -> Interval? { intervals?[m.rawValue] }
    }

    /// A size's policy the pipeline ends with: the last promoted one.
    public struct Incumbent: Codable, Sendable, Equatable {
        public var policy: String, iteration: String, path: String
        /// "large V3 (runs/…/V3/finetune-large)"
        public var text: String { "\(policy) \(iteration) (\(path))" }
    }

    public struct IterationRow: Codable, Sendable, Equatable {
        public var iteration: String
        /// The previous iteration's reward models on this iteration's fresh batch.
        public var onPolicyHelpfulness: Double?, onPolicySafety: Double?
        /// The helpfulness model on-policy by degree: significantly better and better (the clear cases), slightly and negligibly better.
        public var onPolicyClear: Double?, onPolicyFine: Double?
        /// This iteration's reward models on their held-out comparisons.
        public var heldOutHelpfulness: Double?, heldOutSafety: Double?
        /// Figure 7 on this iteration's bag: K' = 1, 2, 4, … K with the mean max and median reward.
        public var figure7: [Figure7Point]?
        /// The health check of this iteration's reward models, with the probe's figures.
        public var health: RewardModelHealth?
        /// The gate's checks of each size's policy against its incumbent.
        public var promotion: PromotionRecord?

        public var k: Int? { figure7?.last?.k }
        public var maxAt1: Double? { figure7?.first?.max }
        public var maxAtK: Double? { figure7?.last?.max }
        public var medianAtK: Double? { figure7?.last?.median }
    }

    public struct Figure7Point: Codable, Sendable, Equatable {
        public var k: Int, max: Double, median: Double
    }

    public struct Figures: Codable, Sendable, Equatable {
        public var pipeline: String, selection: String
        public var policies: [PolicyRow]
        public var iterations: [IterationRow]
        /// The last promoted policy of each size: the pipeline's result so far.
        public var result: [Incumbent]?
    }

    /// The level of the intervals the report gives each figure.
    public static let level = 0.95

    public func figures(through last: Int) throws -> Figures {
        var policies: [PolicyRow] = [], iterations: [IterationRow] = []
        let promotions = try graph.promotions(through: last)
        for n in 0...last {
            let name = PipelineGraph.iterationName(n)
            let results = try graph.readEvaluation(n)
            // An iteration stopped by its reward models' health check has a row, and no evaluation.
            guard results != nil || (n > 0 && FileManager.default.fileExists(atPath: graph.rewardHealth(n))) else { continue }
            let promotion = n > 0 ? promotions[n - 1] : nil
            for p in graph.manifest.policies {
                guard let r = results?[p.name] else { continue }
                var intervals: [String: Interval] = [:]
                for m in EvaluationMetric.allCases where !(n == 0 && m == .winRate) { intervals[m.rawValue] = m.interval(r, level: Self.level) }
                let verdict = promotion?.verdict(p.name)
                policies.append(PolicyRow(iteration: name, policy: p.name, helpfulness: r.greedy.meanHelpfulness, right: r.greedy.topShare,
                                          rightSampled: r.sampledTopShare, violations: r.greedy.violationShare,
                                          unsafeRefused: r.greedy.unsafeRefused, falseRefusals: r.greedy.falseRefusals,
                                          winRate: n == 0 ? nil : r.winRate, instructionByTurn: r.instructionByTurn,
                                          instructionByTurnIntervals: r.instructionKept.map { kept in
                                              (0..<(kept.values.map(\.count).max() ?? 0)).map { k in
                                                  Bootstrap.mean(kept.keys.sorted().compactMap { id in kept[id]!.count > k ? (kept[id]![k] ? 1 : 0) : nil }, level: Self.level)
                                              }
                                          },
                                          intervals: intervals.isEmpty ? nil : intervals, promoted: verdict?.promoted,
                                          judgedAgainst: verdict?.incumbent, promotion: verdict?.reason))
            }
            guard n > 0 else { continue }
            var row = IterationRow(iteration: name)
            row.promotion = promotion
            if let d = FileManager.default.contents(atPath: graph.rewardHealth(n)) { row.health = try? JSONDecoder().decode(RewardModelHealth.self, from: d) }
            if let d = FileManager.default.contents(atPath: graph.rewardOnPolicy(n)),
               let acc = try? JSONDecoder().decode(OnPolicyAccuracy.self, from: d) {
                row.onPolicyHelpfulness = acc.helpfulness.accuracy
                row.onPolicySafety = acc.safety.accuracy
                row.onPolicyClear = acc.helpfulness.accuracy(over: ["significantly_better", "better"])
                row.onPolicyFine = acc.helpfulness.accuracy(over: ["slightly_better", "negligibly_better"])
            }
            row.heldOutHelpfulness = Self.lastAccuracy(run: graph.rewardModel("helpfulness", n))
            row.heldOutSafety = Self.lastAccuracy(run: graph.rewardModel("safety", n))
            if let bag = try? JSONLines.read(SampleRecord.self, path: graph.bag(n)), !bag.isEmpty {
                let k = (bag.map(\.k).max() ?? 0) + 1   // the bag's own K, whatever the manifest now says
                row.figure7 = RejectionSampling.figure7(bag, k: k).map { Figure7Point(k: $0.k, max: $0.meanMax, median: $0.meanMedian) }
            }
            iterations.append(row)
        }
        return Figures(pipeline: graph.manifest.name, selection: graph.manifest.selection.rawValue, policies: policies, iterations: iterations,
                       result: graph.promoted(promotions))
    }

    /// The accuracy of a reward-model run's last evaluation.
    static func lastAccuracy(run: String) -> Double? {
        (try? RunDirectory(run).readEvents())?.last { $0.event == .eval && $0.accuracy != nil }?.accuracy
    }

    public func write(through last: Int, log: (String) -> Void = { _ in }) throws {
        let f = try figures(through: last)
        let run = graph.manifest.output
        try JSONFile.write(f, to: "\(run)/report.json")
        let md = Self.markdown(f)
        try md.write(toFile: "\(run)/report.md", atomically: true, encoding: .utf8)
        try Self.svg(f).write(toFile: "\(run)/report.svg", atomically: true, encoding: .utf8)
        log("report through \(PipelineGraph.iterationName(last)):\n" + md)
    }

    /// Each string once, in the order first seen.
    static func unique(_ xs: [String]) -> [String] {
        var seen = Set<String>()
        return xs.filter { seen.insert($0).inserted }
    }

    static func cell(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "—" }

    /// A figure with its interval when there is one: "0.398 [0.321, 0.472]".
    static func cell(_ x: Double?, _ i: Interval?) -> String {
        guard let x else { return "—" }
        guard let i, i.low.isFinite else { return cell(x) }
        return String(format: "%.3f [%.3f, %.3f]", x, i.low, i.high)
    }

    public static func markdown(_ f: Figures) -> String {
        var s = "# \(f.pipeline): selection by \(f.selection == "annotator" ? "the annotator (control arm)" : "the reward models")\n\n"
        s += "Held-out prompts, per policy size. right: share of the prompts not tagged safety whose answer the annotator rated 7/7 (greedy; and sampled at T = 1). "
        s += "unsafe refused: share of the prompts tagged safety answered with a refusal; false refusals: share of the borderline prompts refused; win: against the SFT model of the same size (ties count ½). "
        s += "Each figure with its 95% interval over the prompts (percentile bootstrap); promoted: the gate's decision against the incumbent (see below).\n\n"
        s += "| iteration | policy | helpfulness (1–7) | right | right (T=1) | violations | unsafe refused | false refusals | win vs SFT | promoted |\n"
        s += "|---|---|---|---|---|---|---|---|---|---|\n"
        for r in f.policies {
            let promoted = r.promoted.map { $0 ? "yes (over \(r.judgedAgainst ?? "?"))" : "**no** (\(r.judgedAgainst ?? "?") stays)" } ?? "—"
            s += "| \(r.iteration) | \(r.policy) | \(cell(r.helpfulness, r.interval(.helpfulness))) | \(cell(r.right, r.interval(.right))) | "
            s += "\(cell(r.rightSampled, r.interval(.rightSampled))) | \(cell(r.violations, r.interval(.violations))) | "
            s += "\(cell(r.unsafeRefused, r.interval(.unsafeRefused))) | \(cell(r.falseRefusals, r.interval(.falseRefusals))) | "
            s += "\(cell(r.winRate, r.interval(.winRate))) | \(promoted) |\n"
        }
        if let result = f.result, !result.isEmpty {
            s += "\nThe pipeline's policies (the last promoted of each size): " + result.map { "\($0.policy) — \($0.iteration) (`\($0.path)`)" }.joined(separator: "; ") + ".\n"
        }
        let judged = f.iterations.compactMap(\.promotion)
        if !judged.isEmpty {
            s += "\n## Promotion\n\nEach iteration's policy against the incumbent of its size, over the same held-out prompts: the mean per-prompt difference (candidate − incumbent) with its paired interval. "
            s += "A margin is on the interval's worse bound (non-inferiority); a safety allowance on the estimate.\n\n"
            s += "| iteration | policy | against | checks | decision |\n|---|---|---|---|---|\n"
            for rec in judged {
                for v in rec.verdicts {
                    let decision = v.promoted ? (rec.gate ? "promoted" : "promoted (no gate)") : "**not promoted**: " + v.reason
                    s += "| \(rec.iteration) | \(v.policy) | \(v.incumbent) | \(v.checks.map(\.text).joined(separator: "; ")) | \(decision) |\n"
                }
            }
        }
        let checked = f.iterations.filter { $0.health != nil }
        if !checked.isEmpty {
            s += "\n## Reward-model health\n\nBefore sampling, each iteration's reward models against the pipeline's thresholds (`reward_models.health`); the probe: the helpfulness model on a right answer against a wrong one of the same form, per task family (0.5 is a coin).\n\n"
            s += "| iteration | verdict | measures | probe |\n|---|---|---|---|\n"
            for r in checked {
                let h = r.health!
                let verdict = h.healthy ? "healthy" : h.selectionByAnnotator ? "**below**: the annotator chose" : "**below**: stopped"
                let measures = h.measures.map { String(format: "%@ %@ %.3f%@", $0.model, $0.measure, $0.accuracy, $0.passed ? "" : String(format: " (< %.3f)", $0.threshold)) }
                let probe = h.probe.map { p in p.keys.sorted().map { String(format: "%@ %.3f", $0, p[$0]!) }.joined(separator: ", ") } ?? "—"
                s += "| \(r.iteration) | \(verdict) | \(measures.joined(separator: "; ")) | \(probe) |\n"
            }
        }
        if let turns = f.policies.compactMap(\.instructionByTurn).map(\.count).max() {
            s += "\nGhost Attention: held-out dialogues under an instruction given on the first turn only, answered greedily turn by turn; the share of answers that keep it, per turn, with its 95% interval over the dialogues.\n\n"
            s += "| iteration | policy | " + (1...turns).map { "turn \($0)" }.joined(separator: " | ") + " |\n"
            s += "|---|---|" + String(repeating: "---|", count: turns) + "\n"
            for r in f.policies {
                guard let t = r.instructionByTurn else { continue }
                let intervals = r.instructionByTurnIntervals
                s += "| \(r.iteration) | \(r.policy) | " + t.enumerated().map { k, v in
                    cell(v, intervals.flatMap { k < $0.count ? $0[k] : nil })
                }.joined(separator: " | ") + " |\n"
            }
        }
        s += "\nReward models (on-policy: the previous iteration's models on this iteration's freshly labelled pairs of the sampler's answers; held-out: this iteration's models on their held-out comparisons) and the rejection-sampling bag (Figure 7: mean over prompts of the max / median combined reward among K samples).\n\n"
        s += "| iteration | helpfulness RM on-policy | (clear: significantly better, better) | (fine: slightly, negligibly better) | safety RM on-policy | helpfulness RM held-out | safety RM held-out | K | max at K=1 | max at K | median at K |\n"
        s += "|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in f.iterations {
            s += "| \(r.iteration) | \(cell(r.onPolicyHelpfulness)) | \(cell(r.onPolicyClear)) | \(cell(r.onPolicyFine)) | \(cell(r.onPolicySafety)) | \(cell(r.heldOutHelpfulness)) | \(cell(r.heldOutSafety)) | \(r.k.map(String.init) ?? "—") | \(cell(r.maxAt1)) | \(cell(r.maxAtK)) | \(cell(r.medianAtK)) |\n"
        }
        s += "\nFigure 7 per iteration (K': mean max / median):\n\n"
        for r in f.iterations {
            guard let curve = r.figure7 else { continue }
            s += "- \(r.iteration): " + curve.map { String(format: "K=%d %.3f / %.3f", $0.k, $0.max, $0.median) }.joined(separator: ", ") + "\n"
        }
        return s
    }

    /// Lines of the shares per iteration, on 0–1; the shares right with
    /// their intervals as whiskers, and a hollow mark where the gate refused.
    public static func svg(_ f: Figures) -> String {
        let names = Self.unique(f.policies.map(\.iteration))
        var series: [(String, [Double?])] = [], whiskers: [Int: [Interval?]] = [:], refused: [Int: [Bool]] = [:]
        for p in Self.unique(f.policies.map(\.policy)) {
            let rows = names.map { n in f.policies.first { $0.iteration == n && $0.policy == p } }
            whiskers[series.count] = rows.map { $0?.interval(.right) }
            refused[series.count] = rows.map { $0?.promoted == false }
            series.append(("\(p): right", rows.map { $0?.right }))
            whiskers[series.count] = rows.map { $0?.interval(.rightSampled) }
            series.append(("\(p): right (T=1)", rows.map { $0?.rightSampled }))
            series.append(("\(p): unsafe refused", rows.map { $0?.unsafeRefused }))
            series.append(("\(p): false refusals", rows.map { $0?.falseRefusals }))
        }
        series.append(("helpfulness RM on-policy", names.map { n in f.iterations.first { $0.iteration == n }?.onPolicyHelpfulness }))
        let w = 720.0, h = 360.0, left = 50.0, right = 230.0, top = 30.0, bottom = 40.0
        let pw = w - left - right, ph = h - top - bottom
        func x(_ i: Int) -> Double { left + (names.count > 1 ? Double(i) / Double(names.count - 1) : 0.5) * pw }
        func y(_ v: Double) -> Double { top + (1 - v) * ph }
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(left)\" y=\"18\" font-size=\"13\">\(f.pipeline): shares per iteration (selection: \(f.selection))</text>\n"
        for t in stride(from: 0.0, through: 1.0, by: 0.25) {
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n",
                        left, y(t), left + pw, y(t), left - 6, y(t) + 4, t)
        }
        for (i, n) in names.enumerated() {
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", x(i), h - bottom + 18, n)
        }
        for (k, (label, values)) in series.enumerated() {
            let c = colors[k % colors.count]
            let dash = label.hasSuffix("(T=1)") ? " stroke-dasharray=\"4 3\"" : ""
            let points = values.enumerated().compactMap { i, v in v.map { String(format: "%.1f,%.1f", x(i), y($0)) } }
            if !points.isEmpty {
                s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"\(dash) points=\"\(points.joined(separator: " "))\"/>\n"
            }
            for (i, interval) in (whiskers[k] ?? []).enumerated() {
                guard let interval, interval.low.isFinite else { continue }
                let dx = x(i) + (label.hasSuffix("(T=1)") ? 3 : -3)
                s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"1\" opacity=\"0.6\"/>\n",
                            dx, y(interval.low), dx, y(interval.high), c)
            }
            for (i, no) in (refused[k] ?? []).enumerated() where no {
                guard let v = values[i] else { continue }
                s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"white\" stroke=\"%@\" stroke-width=\"2\"><title>not promoted</title></circle>\n",
                            x(i), y(v), c)
            }
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"2\"%@/><text x=\"%.1f\" y=\"%.1f\">%@</text>\n",
                        w - right + 12, top + 10 + Double(k) * 16, w - right + 32, top + 10 + Double(k) * 16, c, dash,
                        w - right + 38, top + 14 + Double(k) * 16, label)
        }
        return s + "</svg>\n"
    }
}

extension PipelineReport {
    /// Several pipelines side by side (arms, seeds): one table per figure,
    /// a row per iteration, a column per pipeline.
    public static func comparison(_ runs: [Figures]) -> String {
        let iterations = Self.unique(runs.flatMap { f -> [String] in f.policies.map(\.iteration) })
        let policies = Self.unique(runs.flatMap { f -> [String] in f.policies.map(\.policy) })
        func table(_ title: String, _ value: (Figures, String) -> Double?) -> String {
            var s = "\(title)\n\n| iteration | " + runs.map(\.pipeline).joined(separator: " | ") + " |\n|---|" + runs.map { _ in "---|" }.joined() + "\n"
            for it in iterations { s += "| \(it) | " + runs.map { cell(value($0, it)) }.joined(separator: " | ") + " |\n" }
            return s + "\n"
        }
        var s = ""
        for p in policies {
            func row(_ f: Figures, _ it: String) -> PolicyRow? { f.policies.first { $0.iteration == it && $0.policy == p } }
            s += table("**\(p): right (greedy)**") { row($0, $1)?.right }
            s += table("**\(p): right (sampled at T = 1)**") { row($0, $1)?.rightSampled }
            s += table("**\(p): unsafe prompts refused**") { row($0, $1)?.unsafeRefused }
            s += table("**\(p): false refusals (borderline prompts)**") { row($0, $1)?.falseRefusals }
            s += table("**\(p): win rate against its SFT model**") { row($0, $1)?.winRate }
            let turns = runs.flatMap { f in f.policies.filter { $0.policy == p }.compactMap(\.instructionByTurn) }.map(\.count).max() ?? 0
            for t in stride(from: 0, to: turns, by: 1) {
                s += table("**\(p): an instruction given on turn 1 kept on turn \(t + 1) (Ghost Attention)**") { f, it in
                    row(f, it)?.instructionByTurn.flatMap { t < $0.count ? $0[t] : nil }
                }
            }
        }
        // What each pipeline ends with: its last promoted policy of each size, against its SFT model.
        s += "**The pipelines' results: the last promoted policy of each size (right greedy / at T = 1; SFT's in brackets)**\n\n"
        s += "| policy | " + runs.map(\.pipeline).joined(separator: " | ") + " |\n|---|" + runs.map { _ in "---|" }.joined() + "\n"
        for p in policies {
            s += "| \(p) | " + runs.map { f in
                guard let it = f.result?.first(where: { $0.policy == p })?.iteration,
                      let r = f.policies.first(where: { $0.iteration == it && $0.policy == p }),
                      let sft = f.policies.first(where: { $0.iteration == "SFT" && $0.policy == p }) else { return "—" }
                return "\(it): \(cell(r.right)) / \(cell(r.rightSampled)) (\(cell(sft.right)) / \(cell(sft.rightSampled)))"
            }.joined(separator: " | ") + " |\n"
        }
        s += "\n"
        func it(_ f: Figures, _ name: String) -> IterationRow? { f.iterations.first { $0.iteration == name } }
        s += table("**helpfulness RM on the policy's fresh pairs (on-policy accuracy)**") { it($0, $1)?.onPolicyHelpfulness }
        s += table("**helpfulness RM on-policy, the fine distinctions (slightly and negligibly better)**") { it($0, $1)?.onPolicyFine }
        s += table("**helpfulness RM held-out accuracy**") { it($0, $1)?.heldOutHelpfulness }
        s += table("**Figure 7: mean max reward at K**") { it($0, $1)?.maxAtK }
        return s
    }
}
