import Foundation

extension JobManifest.ParallelismSpec {
    /// The `parallelism:` section (one process when left out), with the
    /// command line's new layout over it (herd resume --data N --tensor M).
    static func parse(_ f: YAMLFields, overrides: JobManifest.Overrides) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: ["data", "tensor", "zero1"])
        var p = Self(data: 1, tensor: 1, zero1: false)
        p.data = try f.int("data", min: 1, max: JobManifest.Limits.ranks) ?? p.data
        p.tensor = try f.int("tensor", min: 1, max: JobManifest.Limits.heads) ?? p.tensor
        p.zero1 = try f.bool("zero1") ?? p.zero1
        if let d = overrides.data { p.data = d }
        if let t = overrides.tensor { p.tensor = t }
        return p
    }
}
