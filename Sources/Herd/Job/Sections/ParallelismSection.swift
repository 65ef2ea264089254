import Foundation

extension JobManifest.ParallelismSpec {
    /// The `parallelism:` section (one process when left out), with the
    /// command line's new layout over it (herd resume --data N --tensor M).
    static func parse(_ f: YAMLFields, overrides: JobManifest.Overrides) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: ["data", "tensor", "zero", "zero1", "sequence_parallel"])
        var p = Self(data: 1, tensor: 1, zero: 0)
        p.data = try f.int("data", min: 1, max: JobManifest.Limits.ranks) ?? p.data
        p.tensor = try f.int("tensor", min: 1, max: JobManifest.Limits.heads) ?? p.tensor
        // `zero1: true` is the older spelling of stage 1.
        let stage = try f.int("zero", min: 0, max: 3), legacy = try f.bool("zero1")
        if let stage, let legacy, legacy != (stage >= 1) {
            throw f.error("zero1", "zero1: \(legacy) contradicts zero: \(stage); give only zero: 0, 1, 2 or 3")
        }
        p.zero = stage ?? (legacy == true ? 1 : 0)
        p.sequenceParallel = try f.bool("sequence_parallel") ?? false
        if let d = overrides.data { p.data = d }
        if let t = overrides.tensor { p.tensor = t }
        return p
    }
}
