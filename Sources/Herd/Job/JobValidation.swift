import Foundation

extension JobManifest {
    /// The rules that span sections, checked once every section has read
    /// itself (a rule within one section is its parser's). Then the job is
    /// laid out on its processes, which fills in a micro-batch the
    /// manifest left out.
    mutating func validate() throws(ManifestError) {
        // Only a reward model reads a reward section; the others keep its defaults (helpfulness).
        if reward.objective == .safety && data.prompts == nil {
            throw ManifestError(file: file, field: "data.prompts", message: "a safety reward model needs the prompts file: its safety tags say which comparisons are safety ones")
        }
        if data.seqLen > model.config.maxSeqLen {
            throw ManifestError(file: file, field: "data.seq_len",
                                message: "must be at most the model's context (model.max_seq_len = \(model.config.maxSeqLen)), got \(data.seqLen)")
        }
        try applyLayout(data: parallelism.data, tensor: parallelism.tensor)
    }
}
