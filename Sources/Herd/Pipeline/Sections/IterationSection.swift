import Foundation

extension PipelineManifest.Iteration {
    static let fields = ["name", "annotate", "k", "temperature", "pool", "stages", "finetune"]

    /// The `iterations:` list, V1, V2, ... in order. Ghost Attention's stage
    /// joins every iteration from `gattFrom` on (the gatt section's `from`),
    /// and the selection pools every earlier bag from `poolFrom` on.
    static func parseList(in top: YAMLFields, gattFrom: Int?, poolFrom: Int) throws(ManifestError) -> [Self] {
        guard let list = top.mapping["iterations"]?.sequence, !list.isEmpty else {
            throw top.missing("iterations", "a list of iterations V1, V2, ...: {annotate, k, temperature}")
        }
        var iterations: [Self] = []
        for (i, node) in list.enumerated() {
            let f = try YAMLFields(node, path: "iterations[\(i)]", file: top.file, base: top.base)
            iterations.append(try parse(f, number: i + 1, gattFrom: gattFrom, poolFrom: poolFrom))
        }
        return iterations
    }

    static func parse(_ f: YAMLFields, number: Int, gattFrom: Int?, poolFrom: Int) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: fields)
        let name = try f.string("name") ?? "V\(number)"
        guard name == "V\(number)" else { throw f.error("name", "iterations are V1, V2, ... in order; this one is V\(number), got \"\(name)\"") }
        var extra = try f.strings("stages") ?? []
        if let from = gattFrom, number >= from, !extra.contains("gatt") { extra.insert("gatt", at: 0) }
        for st in extra {
            guard let known = PipelineGraph.extraStages[st] else {
                throw f.error("stages", "unknown stage \"\(st)\"; known extra stages: \(PipelineGraph.extraStages.keys.sorted().joined(separator: ", "))")
            }
            if let why = known.unavailable { throw f.error("stages", "stage \(st) is not available yet: \(why)") }
        }
        let temperature = try f.double("temperature", min: 0) ?? 1.0
        guard temperature > 0 else { throw f.error("temperature", "must be above 0 (rejection sampling samples)") }
        return Self(number: number, name: name, annotate: try f.requiredInt("annotate", min: 1, "how many new prompts the annotator labels this round"),
                    k: try f.requiredInt("k", min: 1, "samples per prompt"), temperature: temperature,
                    pool: try f.bool("pool") ?? (number >= poolFrom), extraStages: extra,
                    finetune: try PipelineManifest.template(f.section("finetune")))
    }
}
