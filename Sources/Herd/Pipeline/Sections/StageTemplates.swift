import Foundation
import Yams

// The fields of the jobs the pipeline makes (reward models, fine-tunes,
// PPO), kept as YAML and checked as job manifests once the pipeline is
// read (`checkStageJobs`).

extension PipelineManifest {
    /// A stage job's fields: everything a job manifest has but what the pipeline sets.
    static func template(_ f: YAMLFields?) throws(ManifestError) -> Node.Mapping {
        guard let f else { return Node.Mapping([]) }
        for key in ["name", "kind", "init", "output"] where f.has(key) {
            throw f.error(key, "set by the pipeline for every stage job; leave it out")
        }
        return f.mapping
    }

    /// The `reward_models:` section: the chat model both reward models
    /// start from (and its preset, for planning), the comparisons they
    /// start with, and each objective's job fields.
    static func parseRewardModels(_ r: YAMLFields, checkFiles: Bool) throws(ManifestError)
        -> (initial: String, preset: String?, initialPool: String?, jobs: [String: Node.Mapping], health: HealthRule) {
        try r.rejectUnknown(allowed: ["init", "initial_pool", "helpfulness", "safety", "model", "health"])
        let preset = try preset(r)
        let initial = try r.requiredString("init", "the chat model the reward models start from")
        try exists(r, "init", initial, "reward-model starting point (run, checkpoint or Hugging Face directory)", checkFiles: checkFiles)
        let initialPool = try r.string("initial_pool")
        if let ip = initialPool { try exists(r, "initial_pool", ip, "comparison file", checkFiles: checkFiles) }
        var jobs: [String: Node.Mapping] = [:]
        for objective in ["helpfulness", "safety"] {
            jobs[objective] = try template(r.section(objective))
        }
        let health = try HealthRule.parse(r.sectionOrEmpty("health"), checkFiles: checkFiles)
        return (initial, preset, initialPool, jobs, health)
    }

    /// The `finetune:` section: the fine-tuning jobs' fields, where each
    /// size starts every iteration (`from`), and earlier demonstrations to
    /// mix into each round's data (`with_demonstrations: {file, count}`).
    static func parseFinetune(_ ft: YAMLFields, checkFiles: Bool) throws(ManifestError)
        -> (job: Node.Mapping, fromPrevious: Bool, demonstrations: (file: String, count: Int)?) {
        let from = try ft.string("from") ?? "previous"
        guard from == "previous" || from == "initial" else {
            throw ft.error("from", "expected previous (each size from its last iteration's checkpoint) or initial (from its SFT model), got \"\(from)\"")
        }
        var demonstrations: (file: String, count: Int)?
        if let d = try ft.section("with_demonstrations") {
            try d.rejectUnknown(allowed: ["file", "count"])
            let file = try d.requiredString("file", "earlier demonstrations (JSON lines), e.g. the SFT data")
            try exists(d, "file", file, "demonstration file", checkFiles: checkFiles)
            guard let count = try d.int("count", min: 1) else { throw d.missing("count", "how many of them each round mixes in") }
            demonstrations = (file, count)
        }
        var job = ft.mapping
        job["from"] = nil
        job["with_demonstrations"] = nil
        _ = try template(YAMLFields(.mapping(job), path: ft.path, file: ft.file, base: ft.base))
        return (job, from == "previous", demonstrations)
    }
}
