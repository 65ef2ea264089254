/// A PPO job manifest at the paper's scale for checks that only parse and
/// plan it (its files are nowhere: parse with `planOnly`).
enum PPOManifests {
    static func paperScale(model: String, ppo extra: String = "", parallelism: String, more: String = "") -> String {
        """
        kind: ppo
        init: /nowhere/policy
        model: {preset: \(model)}
        data: {prompts: /nowhere/prompts.jsonl}
        ppo: {helpfulness: /nowhere/rm, safety: /nowhere/rm, rollouts: 512, mini_batch: 64\(extra)}
        parallelism: \(parallelism)
        \(more)
        """
    }
}
