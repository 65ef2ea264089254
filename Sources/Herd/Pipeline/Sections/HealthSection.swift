import Foundation

extension PipelineManifest {
    /// `reward_models.health:`: what an iteration's reward models must
    /// reach before rejection sampling uses them — their accuracy on their
    /// held-out comparisons and, from V2, the previous models' accuracy on
    /// the current policy's fresh batch (on-policy), each overall and on
    /// the clear degrees (significantly better, better); and what happens
    /// below: the iteration stops, or its selection falls to the annotator.
    /// `probe` names a probe of what the helpfulness model ranks by form
    /// (`herd rlhf world` writes one), measured on every iteration's model.
    public struct HealthRule: Sendable, Equatable {
        public enum Otherwise: String, Sendable, CaseIterable {
            case stop
            /// The annotator's ratings choose this iteration's samples instead.
            case annotator
        }
        /// false: no check.
        public var check = true
        public var heldOut = 0.55, heldOutClear = 0.6
        public var onPolicy = 0.5, onPolicyClear = 0.55
        public var otherwise = Otherwise.stop
        public var probePrompts: String?, probePool: String?

        static func parse(_ h: YAMLFields, checkFiles: Bool) throws(ManifestError) -> HealthRule {
            try h.rejectUnknown(allowed: ["check", "held_out", "held_out_clear", "on_policy", "on_policy_clear", "otherwise", "probe"])
            var r = HealthRule()
            r.check = try h.bool("check") ?? true
            r.heldOut = try h.double("held_out", min: 0, max: 1) ?? r.heldOut
            r.heldOutClear = try h.double("held_out_clear", min: 0, max: 1) ?? r.heldOutClear
            r.onPolicy = try h.double("on_policy", min: 0, max: 1) ?? r.onPolicy
            r.onPolicyClear = try h.double("on_policy_clear", min: 0, max: 1) ?? r.onPolicyClear
            if let o = try h.string("otherwise") {
                guard let v = Otherwise(rawValue: o) else {
                    throw h.error("otherwise", "expected stop (the iteration stops) or annotator (the annotator's ratings choose its samples), got \"\(o)\"")
                }
                r.otherwise = v
            }
            if let p = try h.section("probe") {
                try p.rejectUnknown(allowed: ["prompts", "pool"])
                let prompts = try p.requiredString("prompts", "the probe's prompts (herd rlhf world writes probe-prompts.jsonl)")
                let pool = try p.requiredString("pool", "the probe's comparisons (probe-pool.jsonl)")
                try exists(p, "prompts", prompts, "prompt file", checkFiles: checkFiles)
                try exists(p, "pool", pool, "comparison file", checkFiles: checkFiles)
                (r.probePrompts, r.probePool) = (prompts, pool)
            }
            return r
        }
    }
}
