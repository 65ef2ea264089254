import Foundation

/// The gate between iterations: whether an iteration's policy of a size
/// replaces the incumbent (the last promoted policy of that size, at
/// first its SFT model), judged on the two policies' evaluations over the
/// same held-out prompts. It decides; the scheduler acts (writes the
/// decision, and the next iteration starts from the incumbent) — as the
/// coordinator's `AttemptDecision` decides and the coordinator acts. A
/// pure function of the evaluations, so a pipeline killed during an
/// evaluation and resumed makes the same decisions.
public enum PromotionGate {
    /// One metric of the rule, candidate against incumbent.
    public struct Check: Sendable, Codable, Equatable {
        public var metric: EvaluationMetric
        /// candidate − incumbent over the same prompts, with its paired interval; nil when not measured.
        public var difference: Interval?
        public var margin: Double
        /// A safety allowance (judged on the estimate), not a non-inferiority margin (judged on the interval).
        public var safety: Bool
        public var passed: Bool

        public var text: String {
            let what = difference.map { $0.signedText } ?? "not measured"
            let side = metric.higherIsBetter ? "−" : "+"
            return "\(metric.rawValue) \(what) (\(safety ? "allowance" : "margin") \(side)\(String(format: "%.3f", margin))): \(passed ? "ok" : "worse")"
        }
    }

    /// Judges a candidate against the incumbent under `rule`. With the gate
    /// off the checks are still made (the report shows them) but the
    /// candidate is promoted.
    public static func judge(candidate: PolicyEvaluation.Result, incumbent: PolicyEvaluation.Result,
                             rule: PipelineManifest.PromotionRule) -> (promoted: Bool, reason: String, checks: [Check]) {
        var checks: [Check] = []
        for b in rule.metrics {
            let d = b.metric.difference(candidate, incumbent, level: rule.confidence)
            // Non-inferior: the interval's worse bound lies within the margin.
            let passed = d.map { b.metric.higherIsBetter ? $0.low >= -b.margin : $0.high <= b.margin } ?? false
            checks.append(Check(metric: b.metric, difference: d, margin: b.margin, safety: false, passed: passed))
        }
        for b in rule.safety {
            let d = b.metric.difference(candidate, incumbent, level: rule.confidence)
            // Not measured (no refusal tags, say) is not a regression.
            let passed = d.map { b.metric.higherIsBetter ? $0.estimate >= -b.margin : $0.estimate <= b.margin } ?? true
            checks.append(Check(metric: b.metric, difference: d, margin: b.margin, safety: true, passed: passed))
        }
        let failed = checks.filter { !$0.passed }
        let level = String(format: "%.0f%%", rule.confidence * 100)
        var reason: String
        if failed.isEmpty {
            reason = "not worse beyond the margins at \(level), and safety held"
        } else {
            let worse = failed.filter { !$0.safety }, unsafe = failed.filter(\.safety)
            var parts: [String] = []
            if !worse.isEmpty { parts.append("not shown non-inferior at \(level) on " + worse.map(\.text).joined(separator: "; ")) }
            if !unsafe.isEmpty { parts.append("safety regressed: " + unsafe.map(\.text).joined(separator: "; ")) }
            reason = parts.joined(separator: "; ")
        }
        guard rule.gate else { return (true, "no gate (promotion.gate: false)" + (failed.isEmpty ? "" : "; it would have refused: \(reason)"), checks) }
        return (failed.isEmpty, reason, checks)
    }

    /// One size's decision in one iteration.
    public struct Verdict: Sendable, Codable, Equatable {
        public var policy: String
        /// The iteration's policy of this size, and the incumbent it was judged against (an iteration's name and its checkpoint).
        public var candidate: String
        public var incumbent: String, incumbentPath: String
        public var promoted: Bool
        public var reason: String
        public var checks: [Check]
    }
}

/// An iteration's decisions, `VN/promotion.json`.
public struct PromotionRecord: Sendable, Codable, Equatable {
    public var iteration: String
    public var gate: Bool
    public var confidence: Double
    public var verdicts: [PromotionGate.Verdict]

    public func verdict(_ policy: String) -> PromotionGate.Verdict? { verdicts.first { $0.policy == policy } }
}

extension PipelineGraph {
    public func promotionFile(_ n: Int) -> String { "\(directory(n))/promotion.json" }

    /// Iteration n's evaluation, per size; nil before it is written.
    public func readEvaluation(_ n: Int) throws -> [String: PolicyEvaluation.Result]? {
        guard let data = FileManager.default.contents(atPath: evaluation(n)) else { return nil }
        do { return try JSONDecoder().decode([String: PolicyEvaluation.Result].self, from: data) } catch {
            throw RecordError(file: evaluation(n), line: 0, message: "not an evaluation: \(error)")
        }
    }

    /// The decisions of iterations 1...n (nil for one not yet evaluated):
    /// each as the scheduler wrote it after the iteration's evaluation, or —
    /// before it has — decided from the evaluations.
    public func promotions(through n: Int) throws -> [PromotionRecord?] {
        var out: [PromotionRecord?] = []
        for i in stride(from: 1, through: n, by: 1) {
            if let data = FileManager.default.contents(atPath: promotionFile(i)) {
                do { out.append(try JSONDecoder().decode(PromotionRecord.self, from: data)) } catch {
                    throw RecordError(file: promotionFile(i), line: 0, message: "not a promotion decision (delete it and the gate decides again from the evaluations): \(error)")
                }
            } else {
                out.append(try decidePromotion(i, earlier: out))
            }
        }
        return out
    }

    /// The gate on iteration n's evaluation (pure: evaluations in, decisions
    /// out), given the decisions of the iterations before it.
    public func decidePromotion(_ n: Int, earlier: [PromotionRecord?]) throws -> PromotionRecord? {
        guard n >= 1, let evaluated = try readEvaluation(n) else { return nil }
        let rule = manifest.promotion
        var verdicts: [PromotionGate.Verdict] = []
        for p in manifest.policies {
            guard let candidate = evaluated[p.name] else { continue }
            let i = Self.incumbent(p, in: earlier.prefix(n - 1))
            guard let incumbent = try readEvaluation(i)?[p.name] else {
                throw RecordError(file: evaluation(i), line: 0,
                                  message: "no evaluation of \(p.name) to judge \(PipelineGraph.iterationName(n))'s policy against (the incumbent is \(PipelineGraph.iterationName(i))'s)")
            }
            let (promoted, reason, checks) = PromotionGate.judge(candidate: candidate, incumbent: incumbent, rule: rule)
            verdicts.append(.init(policy: p.name, candidate: self.candidate(p, of: n), incumbent: PipelineGraph.iterationName(i),
                                  incumbentPath: self.candidate(p, of: i), promoted: promoted, reason: reason, checks: checks))
        }
        return PromotionRecord(iteration: PipelineGraph.iterationName(n), gate: rule.gate, confidence: rule.confidence, verdicts: verdicts)
    }

    /// The iteration whose policy of size p is the incumbent after the
    /// decisions given (0: the SFT model). An iteration not yet evaluated
    /// counts as promoted: what `herd rlhf status` shows of later
    /// iterations is a plan.
    static func incumbent(_ p: PipelineManifest.Policy, in decisions: ArraySlice<PromotionRecord?>) -> Int {
        var incumbent = 0
        for (k, d) in decisions.enumerated() where d?.verdict(p.name)?.promoted ?? true { incumbent = k + 1 }
        return incumbent
    }

    /// The pipeline's result so far: each size's last promoted policy,
    /// over the decisions made (an iteration not yet evaluated counts for nothing).
    public func promoted(_ decisions: [PromotionRecord?]) -> [PipelineReport.Incumbent] {
        let made = decisions.prefix { $0 != nil }
        return manifest.policies.map { p in
            let i = Self.incumbent(p, in: made)
            return PipelineReport.Incumbent(policy: p.name, iteration: PipelineGraph.iterationName(i), path: candidate(p, of: i))
        }
    }

    /// The incumbent of size p after iteration n.
    public func incumbentIteration(_ p: PipelineManifest.Policy, after n: Int) throws -> Int {
        Self.incumbent(p, in: try promotions(through: n)[...])
    }

    /// The incumbent's checkpoint after iteration n: what iteration n + 1 samples and starts from.
    public func incumbent(_ p: PipelineManifest.Policy, after n: Int) throws -> String {
        candidate(p, of: try incumbentIteration(p, after: n))
    }
}
