import Foundation

extension PipelineManifest.Policy {
    static let fields = ["name", "init", "sampler", "model", "finetune", "ppo"]

    /// The `policies:` list: the sizes the pipeline trains, exactly one of
    /// them the sampler (a single policy is it without saying).
    static func parseList(in top: YAMLFields, checkFiles: Bool) throws(ManifestError) -> [Self] {
        guard let list = top.mapping["policies"]?.sequence, !list.isEmpty else {
            throw top.missing("policies", "a list of {name, init, sampler} — the policy sizes, one of them the sampler")
        }
        var policies: [Self] = []
        for (i, node) in list.enumerated() {
            let f = try YAMLFields(node, path: "policies[\(i)]", file: top.file, base: top.base)
            policies.append(try parse(f, after: policies, checkFiles: checkFiles))
        }
        switch policies.filter(\.sampler).count {
        case 0: if policies.count == 1 { policies[0].sampler = true } else { throw top.error("policies", "name one policy as the sampler (sampler: true)") }
        case 1: break
        default: throw top.error("policies", "only one policy samples (sampler: true); the others are distilled from it")
        }
        return policies
    }

    /// One size; its name is not one of the `earlier` ones'.
    static func parse(_ f: YAMLFields, after earlier: [Self], checkFiles: Bool) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: fields)
        let name = try f.requiredString("name", "a short name for this size, e.g. 70b")
        guard name.range(of: "^[A-Za-z0-9_.-]+$", options: .regularExpression) != nil else {
            throw f.error("name", "letters, digits, '.', '_' and '-' only (it names directories), got \"\(name)\"")
        }
        if earlier.contains(where: { $0.name == name }) { throw f.error("name", "two policies are called \(name)") }
        let initial = try f.requiredString("init", "the policy's starting checkpoint (its SFT run)")
        try PipelineManifest.exists(f, "init", initial, "policy (run, checkpoint or Hugging Face directory)", checkFiles: checkFiles)
        return Self(name: name, initial: initial, sampler: try f.bool("sampler") ?? false, preset: try PipelineManifest.preset(f),
                    finetune: try PipelineManifest.template(f.section("finetune")), ppo: try PipelineManifest.template(f.section("ppo")))
    }
}
