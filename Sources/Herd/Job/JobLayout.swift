import Foundation

/// The rules that tie a job's batch and model to its layout (data ×
/// tensor), in one place: checked when the manifest is read and again when
/// a resumed, shrunken or grown job takes another layout.
extension JobManifest {
    /// Puts the job on `data` × `tensor` ranks: a micro-batch the manifest
    /// left out becomes each data rank's whole share on the new layout.
    public mutating func applyLayout(data: Int, tensor: Int) throws(ManifestError) {
        parallelism.data = data
        parallelism.tensor = tensor
        if kind == .prepare { return try checkLayout() }
        if !batch.microBatchGiven {
            batch.microBatch = kind == .ppo ? max(1, (ppo?.miniBatch ?? 1) / max(data, 1)) : max(1, batch.sequences / max(data, 1))
        }
        try checkLayout()
    }

    /// This job on another layout (the checkpoint reshards), or why it cannot be.
    public func laidOut(data: Int, tensor: Int) throws(ManifestError) -> JobManifest {
        var m = self
        try m.applyLayout(data: data, tensor: tensor)
        return m
    }

    public func checkLayout() throws(ManifestError) {
        func refuse(_ field: String, _ message: String) -> ManifestError { ManifestError(file: file, field: field, message: message) }
        let dp = parallelism.data, tp = parallelism.tensor
        if kind == .prepare {
            // Any number of ranks: the units are dealt among them.
            if tp > 1 { throw refuse("parallelism.tensor", "a prepare job's ranks each tokenize their own units: use parallelism.data, got tensor \(tp)") }
            return
        }
        if model.config.heads % tp != 0 {
            throw refuse("parallelism.tensor", "must divide model.heads (\(model.config.heads)), got \(tp)")
        }
        if let p = ppo, p.miniBatch % dp != 0 {
            throw refuse("ppo.mini_batch", "each mini-batch is split among the parallelism.data = \(dp) ranks: must be a multiple of it, got \(p.miniBatch)")
        }
        guard batch.sequences % dp == 0 else {
            throw refuse(batch.sizeField, "the global batch of \(batch.sequences) sequences must divide among parallelism.data = \(dp) ranks")
        }
        let perRank = batch.sequences / dp, micro = batch.microBatch
        if kind == .reward && (micro % 2 != 0 || perRank % 2 != 0) {
            throw refuse(batch.microBatchGiven ? "batch.micro_batch" : batch.sizeField,
                         "a reward model's pair stays together: each data-parallel rank's \(perRank) sequences and the micro-batch of \(micro) must be even")
        }
        guard perRank % micro == 0 else {
            throw refuse("batch.micro_batch", dp == 1
                ? "must divide the global batch of \(batch.sequences) sequences, got \(micro)"
                : "must divide the \(perRank) sequences each of the \(dp) data-parallel ranks computes, got \(micro)")
        }
    }
}
