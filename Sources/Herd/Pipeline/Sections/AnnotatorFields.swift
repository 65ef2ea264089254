import Foundation

extension PipelineManifest {
    /// `annotator`: the command that labels comparisons and rates answers,
    /// an argv (never a shell string) whose first word must run here when
    /// files are checked.
    static func parseAnnotator(_ top: YAMLFields, checkFiles: Bool) throws(ManifestError) -> [String] {
        guard let argv = try top.strings("annotator"), let exe = argv.first else {
            throw top.missing("annotator", "the annotator command as a list of words (an argv, never a shell string), e.g. [herd, rlhf, annotator]")
        }
        if checkFiles && executable(exe) == nil {
            throw top.error("annotator", "\(exe) is not an executable file (nor a command on PATH)")
        }
        return argv
    }

    /// A path field's file, which must exist when the pipeline's files are checked.
    static func exists(_ f: YAMLFields, _ key: String, _ path: String, _ what: String, checkFiles: Bool) throws(ManifestError) {
        if checkFiles && !FileManager.default.fileExists(atPath: path) { throw f.error(key, "no such \(what): \(path)") }
    }

    /// `model`: a preset naming a shape, for `herd plan` when a checkpoint is not on this machine.
    static func preset(_ f: YAMLFields) throws(ManifestError) -> String? {
        guard let p = try f.string("model") else { return nil }
        guard LlamaConfig.presets[p] != nil else {
            throw f.error("model", "unknown preset \"\(p)\"; expected one of: \(LlamaConfig.presets.keys.sorted().joined(separator: ", "))")
        }
        return p
    }
}

extension PipelineManifest.SelectionArm {
    /// `selection`, by default the paper's (the reward models pick).
    static func parse(_ top: YAMLFields) throws(ManifestError) -> Self {
        let text = try top.string("selection") ?? Self.rewardModel.rawValue
        guard let arm = Self(rawValue: text) else {
            throw top.error("selection", "expected reward_model or annotator, got \"\(text)\"")
        }
        return arm
    }
}
