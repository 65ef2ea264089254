import Foundation

extension JobManifest {
    /// How many optimizer steps the job runs: `steps`, or a token budget
    /// (`train_tokens`), or — a fine-tune's — `epochs` over its data, or the
    /// kind's default (`KindDefaults.length`); the command line's --steps
    /// over all of them.
    static func parseSteps(in top: YAMLFields, _ kind: KindDefaults, overrides: Overrides, data: DataSpec, reward: RewardSpec,
                           seed: UInt64, initFrom: String?, sequences: Int) throws(ManifestError) -> Int {
        var steps = try top.int("steps", min: 1, max: Limits.steps) ?? 0
        switch kind.length {
        case .iterations(let n):
            if top.has("epochs") { throw top.error("epochs", "a PPO job gives steps (PPO iterations; the paper ran 200–400)") }
            if steps == 0 { steps = n }
        case .epochs(let n):
            // Epochs over the packed demonstrations (the paper: 2) or the comparisons (1).
            if overrides.steps == nil, steps == 0 {
                let epochs = try top.double("epochs", min: 0.001) ?? n
                steps = overrides.planOnly ? 1 : try epochSteps(kind.data, data: data, reward: reward, seed: seed, initFrom: initFrom!,
                                                                epochs: epochs, sequences: sequences, file: top.file)
            }
        case .given:
            if top.has("epochs") { throw top.error("epochs", "only for kinds sft and reward (pretraining gives steps or train_tokens)") }
        }
        if let budget = try top.int("train_tokens", min: 1, max: Limits.tokens) {
            if steps > 0 { throw top.error("train_tokens", "give either steps or train_tokens, not both") }
            let perStep = sequences * data.seqLen
            steps = budget / perStep + (budget % perStep == 0 ? 0 : 1)
        }
        if let o = overrides.steps { steps = o } else if steps == 0 {
            throw top.missing("steps", "the number of optimizer steps, an integer (or train_tokens, a token budget)")
        }
        return steps
    }

    /// Steps for `epochs` passes over the packed demonstrations or the comparisons.
    static func epochSteps(_ form: KindDefaults.DataForm, data: DataSpec, reward: RewardSpec, seed: UInt64, initFrom: String, epochs: Double,
                           sequences: Int, file: String) throws(ManifestError) -> Int {
        do {
            let windows = form == .demonstrations ? try DemonstrationData(data: data, initFrom: initFrom).dataset.train.count
                                                  : 2 * (try ComparisonData(data: data, initFrom: initFrom, reward: reward, seed: seed).dataset.pairs.count)
            return max(1, Int((epochs * Double(windows) / Double(sequences)).rounded(.up)))
        } catch let e as ManifestError { throw e } catch {
            throw ManifestError(file: file, field: "data.\(form.rawValue)", message: "\(error)")
        }
    }
}
