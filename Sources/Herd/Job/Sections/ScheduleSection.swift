import Foundation

extension CosineSchedule {
    /// The `schedule:` section: warmup, then cosine decay from the peak rate
    /// to a floor. Its defaults are the kind's (`KindDefaults.warmup` and
    /// `minLRRatio`); the decay spans the run.
    static func parse(_ f: YAMLFields, peak: Double, steps: Int, _ kind: JobManifest.KindDefaults) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: ["warmup_steps", "decay_steps", "min_lr_ratio"])
        var s = CosineSchedule(peak: peak, warmupSteps: kind.warmup.steps(of: steps), decaySteps: steps, minRatio: kind.minLRRatio)
        s.warmupSteps = try f.int("warmup_steps", min: 0) ?? s.warmupSteps
        s.decaySteps = try f.int("decay_steps", min: 1) ?? steps
        s.minRatio = try f.double("min_lr_ratio", min: 0, max: 1) ?? s.minRatio
        return s
    }
}
