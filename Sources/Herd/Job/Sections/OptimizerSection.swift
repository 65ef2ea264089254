import Foundation

extension JobManifest.OptimizerSpec {
    /// The `optimizer:` section: AdamW's settings (the paper's when not
    /// given), the gradient clip, and the peak learning rate, which is the
    /// schedule's. Pretraining names its rate; the fine-tunes have the
    /// paper's (`KindDefaults.learningRate`) and may leave the section out.
    static func parse(in top: YAMLFields, _ kind: JobManifest.KindDefaults) throws(ManifestError) -> (optimizer: Self, peakLR: Double) {
        let f = kind.learningRate == nil ? try top.requiredSection("optimizer", "at least lr")
                                         : try top.sectionOrEmpty("optimizer")
        return try parse(f, defaultLR: kind.learningRate)
    }

    static func parse(_ f: YAMLFields, defaultLR: Double?) throws(ManifestError) -> (optimizer: Self, peakLR: Double) {
        try f.rejectUnknown(allowed: ["lr", "beta1", "beta2", "eps", "weight_decay", "grad_clip"])
        let lr: Double
        if let defaultLR { lr = try f.double("lr", min: 0) ?? defaultLR } else {
            lr = try f.requiredDouble("lr", min: 0, "the peak learning rate, a number")
        }
        var adamw = AdamWConfig()
        adamw.beta1 = try f.double("beta1", min: 0, max: 0.999999) ?? adamw.beta1
        adamw.beta2 = try f.double("beta2", min: 0, max: 0.999999) ?? adamw.beta2
        adamw.eps = try f.double("eps", min: 0) ?? adamw.eps
        adamw.weightDecay = try f.double("weight_decay", min: 0) ?? adamw.weightDecay
        return (Self(adamw: adamw, gradClip: try f.double("grad_clip", min: 0) ?? 1.0), lr)
    }
}
