import Foundation

/// A PPO job's settings (`kind: ppo`, section `ppo:`), with the Llama 2
/// paper's as defaults (section 3.2.3): batches of 512 rollouts, mini-batches
/// of 64 with one gradient step each, clip 0.2, β = 0.01 (0.005 for 70B),
/// and — in the job's `optimizer:` — AdamW (0.9, 0.95, eps 1e-5), weight
/// decay 0.1, gradient clip 1.0, a constant learning rate of 1e-6. The
/// policy and the frozen reference both start from the job's `init`.
public struct PPOSpec: Sendable, Codable, Equatable {
    /// The reward models whose combined score the policy maximises.
    public var helpfulness: String
    public var safety: String
    /// The value model's starting weights (a reward model: its scalar head
    /// becomes the value head); default the helpfulness reward model.
    public var valueInit: String
    /// Rollouts per PPO iteration (the paper's batch) and per gradient step.
    public var rollouts = 512
    public var miniBatch = 64
    public var beta = 0.01
    public var clip = 0.2
    public var gamma = 1.0
    public var lambda = 0.95
    public var temperature = 1.0
    public var maxNewTokens = 128
    /// The value model's learning rate (the paper gives none; a critic
    /// learns faster than its policy, as in OpenRLHF's defaults).
    public var valueLR = 1e-5
    /// Advantages shifted and scaled to mean 0, variance 1 over the batch.
    public var whitenAdvantages = true
    /// Where the frozen models (the reference and both reward models) run:
    /// nil — on the trainers' ranks (colocated); N — on N ranks of their
    /// own after the trainers', split among them by tensor parallelism
    /// (`placement: separate`, `frozen_ranks: N`), scoring the answers the
    /// trainers send them over MPI while the trainers run the policy and
    /// the value model. (Optional: jobs resolved before it decode as colocated.)
    public var frozenRanks: Int?
    /// The ranks of the frozen models' own group (0 when colocated).
    public var frozenGroup: Int { frozenRanks ?? 0 }

    static let fields = ["helpfulness", "safety", "value_init", "rollouts", "mini_batch", "beta", "clip", "gamma", "lambda",
                         "temperature", "max_new_tokens", "value_lr", "whiten_advantages", "placement", "frozen_ranks"]

    /// The `ppo:` section, which a PPO job needs and no other kind has.
    static func parse(in top: YAMLFields, _ kind: JobManifest.KindDefaults, planOnly: Bool) throws(ManifestError) -> PPOSpec? {
        guard let f = try top.section("ppo") else {
            if kind.ppoSection { throw top.missing("ppo", "the reward models (ppo.helpfulness, ppo.safety) and PPO's settings") }
            return nil
        }
        guard kind.ppoSection else { throw top.error("ppo", "only for kind ppo") }
        return try parse(f, planOnly: planOnly)
    }

    static func parse(_ f: YAMLFields, planOnly: Bool) throws(ManifestError) -> PPOSpec {
        try f.rejectUnknown(allowed: fields)
        let h = try f.requiredPath("helpfulness", "the helpfulness reward model (a Herd run or checkpoint directory)")
        let s = try f.requiredPath("safety", "the safety reward model (a Herd run or checkpoint directory)")
        let v = try f.path("value_init") ?? h
        for (key, path) in [("helpfulness", h), ("safety", s), ("value_init", v)] where !planOnly {
            guard FileManager.default.fileExists(atPath: path) else { throw f.error(key, "no such run or checkpoint directory: \(path)") }
            do {
                guard try ModelFiles.config(path).scalarHead else { throw f.error(key, "\(path) is not a reward model (it has no scalar head)") }
            } catch let e as ManifestError { throw e } catch { throw f.error(key, "cannot read the model there: \(error)") }
        }
        var p = PPOSpec(helpfulness: h, safety: s, valueInit: v)
        p.rollouts = try f.int("rollouts", min: 1, max: JobManifest.Limits.sequences) ?? p.rollouts
        p.miniBatch = try f.int("mini_batch", min: 1, max: JobManifest.Limits.sequences) ?? min(p.miniBatch, p.rollouts)
        p.beta = try f.double("beta", min: 0) ?? p.beta
        p.clip = try f.double("clip", min: 0, max: 1) ?? p.clip
        p.gamma = try f.double("gamma", min: 0, max: 1) ?? p.gamma
        p.lambda = try f.double("lambda", min: 0, max: 1) ?? p.lambda
        p.temperature = try f.double("temperature", min: 0) ?? p.temperature
        p.maxNewTokens = try f.int("max_new_tokens", min: 1, max: JobManifest.Limits.sequenceLength) ?? p.maxNewTokens
        p.valueLR = try f.double("value_lr", min: 0) ?? p.valueLR
        p.whitenAdvantages = try f.bool("whiten_advantages") ?? p.whitenAdvantages
        switch try f.string("placement") ?? "colocated" {
        case "colocated":
            if f.has("frozen_ranks") { throw f.error("frozen_ranks", "only with placement: separate (colocated frozen models are on the trainers' ranks)") }
        case "separate": p.frozenRanks = try f.int("frozen_ranks", min: 1, max: JobManifest.Limits.ranks) ?? 1
        case let other: throw f.error("placement", "expected colocated (the frozen models on the trainers' ranks) or separate (on ranks of their own), got \"\(other)\"")
        }
        guard p.temperature > 0 else { throw f.error("temperature", "rollouts are sampled: must be above 0 (greedy answers have no ratio to clip)") }
        guard p.rollouts % p.miniBatch == 0 else {
            throw f.error("mini_batch", "must divide ppo.rollouts (\(p.rollouts)), got \(p.miniBatch)")
        }
        return p
    }
}
