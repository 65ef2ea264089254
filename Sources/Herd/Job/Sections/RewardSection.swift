import Foundation

extension JobManifest.RewardSpec {
    /// The `reward:` section of a reward model (all defaults when left out):
    /// its margin table and objective. The objective picks the default
    /// share of the other kind's comparisons: the paper's equal mix for
    /// helpfulness, 10% of the mix (1/9) for safety.
    static func parse(in top: YAMLFields, _ kind: JobManifest.KindDefaults) throws(ManifestError) -> Self {
        guard let f = try top.section("reward") else { return Self() }
        guard kind.rewardSection else { throw top.error("reward", "only for kind reward") }
        return try parse(f)
    }

    static func parse(_ f: YAMLFields) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: ["margin", "objective", "other_share"])
        var reward = Self()
        let text = try f.string("margin") ?? "small"
        guard let m = MarginTable(rawValue: text) else {
            throw f.error("margin", "expected one of: small, large, none (the paper's margin tables), got \"\(text)\"")
        }
        reward.margin = m
        let o = try f.string("objective") ?? "helpfulness"
        guard let objective = Objective(rawValue: o) else {
            throw f.error("objective", "expected helpfulness or safety, got \"\(o)\"")
        }
        reward.objective = objective
        reward.otherShare = try f.double("other_share", min: 0) ?? (objective == .helpfulness ? 1.0 : 1.0 / 9.0)
        return reward
    }
}
