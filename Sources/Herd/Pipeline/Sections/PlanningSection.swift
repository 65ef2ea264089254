import Foundation

extension PipelineManifest.PlanningSizes {
    /// The `plan:` section (all defaults when left out): what `herd plan`
    /// assumes of data that is not on this machine.
    static func parse(_ f: YAMLFields) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: ["sample_prompts", "initial_pool", "held_out", "prompt_tokens", "answer_tokens", "generation_batch",
                                      "gatt_dialogues", "gatt_turns"])
        var p = Self()
        p.samplePrompts = try f.int("sample_prompts", min: 1)
        p.initialPool = try f.int("initial_pool", min: 0) ?? p.initialPool
        p.heldOut = try f.int("held_out", min: 1)
        p.promptTokens = try f.int("prompt_tokens", min: 1) ?? p.promptTokens
        p.answerTokens = try f.int("answer_tokens", min: 1) ?? p.answerTokens
        p.generationBatch = try f.int("generation_batch", min: 1) ?? p.generationBatch
        p.gattDialogues = try f.int("gatt_dialogues", min: 1)
        p.gattTurns = try f.int("gatt_turns", min: 1) ?? p.gattTurns
        return p
    }
}
