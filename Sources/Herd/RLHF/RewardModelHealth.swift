import Foundation

/// Whether an iteration's reward models can be trusted to choose its
/// samples: each model's accuracy on its held-out comparisons (from its
/// run's last evaluation) and, from V2, on-policy (the previous models on
/// this iteration's fresh batch of the current policy's answers), overall
/// and on the clear degrees, against the pipeline's thresholds. Written
/// as `VN/rm-health.json`; with a probe, also what the helpfulness model
/// ranks by form rather than by content, per task family (near 0.5: it
/// cannot tell a right answer from a wrong one of the same form).
public struct RewardModelHealth: Sendable, Codable, Equatable {
    public struct Measure: Sendable, Codable, Equatable {
        public var model: String, measure: String
        public var accuracy: Double, threshold: Double
        public var passed: Bool { accuracy >= threshold }
        public var text: String {
            String(format: "the %@ reward model's %@ accuracy is %.3f, below %.3f by %.3f", model, measure, accuracy, threshold, threshold - accuracy)
        }
    }
    public struct Thresholds: Sendable, Codable, Equatable {
        public var heldOut: Double, heldOutClear: Double, onPolicy: Double, onPolicyClear: Double
        public init(heldOut: Double, heldOutClear: Double, onPolicy: Double, onPolicyClear: Double) {
            self.heldOut = heldOut; self.heldOutClear = heldOutClear; self.onPolicy = onPolicy; self.onPolicyClear = onPolicyClear
        }
    }

    public var measures: [Measure]
    /// What was not measured, and why (no on-policy batch in V1, say).
    public var unmeasured: [String]
    /// The helpfulness model's accuracy on each family of the probe.
    public var probe: [String: Double]?
    /// Below a threshold, the annotator chooses this iteration's samples.
    public var selectionByAnnotator: Bool

    public var healthy: Bool { measures.allSatisfy(\.passed) }
    public var failures: [String] { measures.filter { !$0.passed }.map(\.text) }

    static let clear: [PreferenceDegree] = [.significantlyBetter, .better]

    /// Checks the models of the runs `helpfulness` and `safety`; `onPolicy`
    /// is the `rm-accuracy` result of the previous models on this batch.
    public static func check(helpfulness: String, safety: String, onPolicy: String?, thresholds t: Thresholds,
                             probe: (prompts: String, pool: String)?, fallBackToAnnotator: Bool) throws -> RewardModelHealth {
        var measures: [Measure] = [], unmeasured: [String] = []
        for (model, run) in [("helpfulness", helpfulness), ("safety", safety)] {
            guard let eval = try RunDirectory(run).readEvents().last(where: { $0.event == .eval && $0.accuracy != nil }),
                  let overall = eval.accuracy else {
                throw RecordError(file: RunDirectory(run).events, line: 0,
                                  message: "no held-out accuracy: the \(model) reward model's run has no eval event (give it held-out comparisons: data.val_fraction)")
            }
            measures.append(Measure(model: model, measure: "held-out", accuracy: overall, threshold: t.heldOut))
            if let c = eval.accuracy(over: clear) {
                measures.append(Measure(model: model, measure: "held-out clear-degree", accuracy: c, threshold: t.heldOutClear))
            } else {
                unmeasured.append("\(model): no held-out pairs of the clear degrees")
            }
        }
        if let onPolicy {
            let acc = try JSONDecoder().decode(OnPolicyAccuracy.self, from: try Data(contentsOf: URL(fileURLWithPath: onPolicy)))
            for (model, part) in [("helpfulness", acc.helpfulness), ("safety", acc.safety)] {
                guard let a = part.accuracy else { unmeasured.append("\(model): no on-policy pairs"); continue }
                measures.append(Measure(model: model, measure: "on-policy", accuracy: a, threshold: t.onPolicy))
                if let c = part.accuracy(over: clear.map(\.rawValue)) {
                    measures.append(Measure(model: model, measure: "on-policy clear-degree", accuracy: c, threshold: t.onPolicyClear))
                }
            }
        } else {
            unmeasured.append("on-policy: no earlier reward models to measure on this batch (the first iteration)")
        }
        var probeAccuracy: [String: Double]?
        if let probe {
            let models = try RewardModels(helpfulness: helpfulness, safety: safety)
            probeAccuracy = try OnPolicyAccuracy.byBatch(models, pool: probe.pool, prompts: probe.prompts)
                .compactMapValues { $0.helpfulness.accuracy }
        }
        let healthy = measures.allSatisfy(\.passed)
        return RewardModelHealth(measures: measures, unmeasured: unmeasured, probe: probeAccuracy,
                                 selectionByAnnotator: !healthy && fallBackToAnnotator)
    }
}
