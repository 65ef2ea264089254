import Foundation

extension PipelineManifest.GAttSettings {
    /// The `gatt:` section: Ghost Attention's dialogues, the held-out ones,
    /// the first iteration it runs in, and whether the annotator checks the
    /// sampled turns.
    static func parse(_ g: YAMLFields, checkFiles: Bool) throws(ManifestError) -> Self {
        try g.rejectUnknown(allowed: ["dialogues", "held_out", "from", "temperature", "check", "tensor"])
        let d = try g.requiredString("dialogues", "multi-turn dialogues under a standing instruction (JSON lines: id, instruction, turns)")
        try PipelineManifest.exists(g, "dialogues", d, "dialogue file", checkFiles: checkFiles)
        var s = Self(dialogues: d)
        s.heldOut = try g.string("held_out")
        if let h = s.heldOut { try PipelineManifest.exists(g, "held_out", h, "dialogue file", checkFiles: checkFiles) }
        s.from = try g.int("from", min: 1) ?? s.from
        s.temperature = try g.double("temperature", min: 0) ?? s.temperature
        s.tensor = try g.int("tensor", min: 1) ?? s.tensor
        let check = try g.string("check") ?? "none"
        guard check == "none" || check == "annotator" else {
            throw g.error("check", "expected none or annotator (keep only the sampled turns the annotator says keep the instruction), got \"\(check)\"")
        }
        s.checkByAnnotator = check == "annotator"
        return s
    }
}
