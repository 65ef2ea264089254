import Foundation

extension PipelineManifest {
    /// The `prompts:` section: the prompts annotation batches are drawn
    /// from, those sampled (by default the same), how many of them, and
    /// the held-out ones every iteration is evaluated on.
    static func parsePrompts(_ p: YAMLFields, checkFiles: Bool) throws(ManifestError)
        -> (annotate: String, sample: String, heldOut: String, sampleCount: Int?) {
        try p.rejectUnknown(allowed: ["annotate", "sample", "sample_count", "held_out"])
        let annotate = try p.requiredString("annotate", "the prompts each iteration's annotation batch is drawn from")
        let sample = try p.string("sample") ?? annotate
        let heldOut = try p.requiredString("held_out", "the held-out prompts every iteration is evaluated on")
        for (key, path) in [("annotate", annotate), ("sample", sample), ("held_out", heldOut)] {
            try exists(p, key, path, "prompt file", checkFiles: checkFiles)
        }
        return (annotate, sample, heldOut, try p.int("sample_count", min: 1))
    }
}
