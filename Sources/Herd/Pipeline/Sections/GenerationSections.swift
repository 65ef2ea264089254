import Foundation

// The sections of what the pipeline generates with its policies: answers
// for the annotator to compare, samples for rejection sampling, answers
// to evaluate. Each is all defaults when left out.

extension PipelineManifest {
    /// `annotation:`: the two answers to a prompt are sampled at two
    /// temperatures, on `tensor` ranks holding the policy.
    static func parseAnnotation(_ a: YAMLFields) throws(ManifestError) -> (maxNewTokens: Int, temperatures: (Double, Double), tensor: Int) {
        try a.rejectUnknown(allowed: ["max_new_tokens", "temperatures", "tensor"])
        var temps = (1.0, 1.5)
        if let t = a.mapping["temperatures"] {
            guard let seq = t.sequence, seq.count == 2, let x = seq[0].float, let y = seq[1].float, x > 0, y > 0 else {
                throw a.error("temperatures", "expected two positive numbers, e.g. [1.0, 1.5]")
            }
            temps = (x, y)
        }
        return (try a.int("max_new_tokens", min: 1) ?? 64, temps, try a.int("tensor", min: 1) ?? 1)
    }

    /// `sampling:`: the samples' length, the ranks that sample, how many
    /// of them hold one copy of the models (tensor parallelism), and the
    /// prompts a group samples at once.
    static func parseSampling(_ s: YAMLFields) throws(ManifestError) -> (maxNewTokens: Int, ranks: Int, tensor: Int, chunk: Int) {
        try s.rejectUnknown(allowed: ["max_new_tokens", "ranks", "tensor", "chunk"])
        let ranks = try s.int("ranks", min: 1) ?? 1, tensor = try s.int("tensor", min: 1) ?? 1
        guard ranks % tensor == 0 else { throw s.error("tensor", "must divide sampling.ranks (\(ranks)), got \(tensor)") }
        return (try s.int("max_new_tokens", min: 1) ?? 64, ranks, tensor, try s.int("chunk", min: 1) ?? 8)
    }

    /// `evaluation:`: the evaluated answers' length, the ranks each policy
    /// is split across, and the answers sampled at T = 1 per prompt (4 by
    /// default: the gate compares T = 1 shares, and one draw per prompt
    /// makes two equal policies look apart).
    static func parseEvaluation(_ e: YAMLFields) throws(ManifestError) -> (maxNewTokens: Int, tensor: Int, samples: Int) {
        try e.rejectUnknown(allowed: ["max_new_tokens", "tensor", "samples"])
        return (try e.int("max_new_tokens", min: 1) ?? 64, try e.int("tensor", min: 1) ?? 1, try e.int("samples", min: 1, max: 64) ?? 4)
    }
}
