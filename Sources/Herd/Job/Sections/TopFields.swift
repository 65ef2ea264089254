import Foundation

// The manifest's top-level fields that are not sections: the kind, the
// name, the weights the job starts from, the run directory.

extension JobManifest.Kind {
    static func parse(_ top: YAMLFields) throws(ManifestError) -> Self {
        let kinds = allCases.map(\.rawValue).joined(separator: ", ")
        let text = try top.requiredString("kind", "the kind of job: \(kinds)")
        guard let kind = Self(rawValue: text) else { throw top.error("kind", "unknown kind \"\(text)\"; expected one of: \(kinds)") }
        return kind
    }
}

extension JobManifest {
    /// `name`, by default the file's name without its extension.
    static func parseName(_ top: YAMLFields) throws(ManifestError) -> String {
        let name = try top.string("name") ?? ((top.file as NSString).lastPathComponent as NSString).deletingPathExtension
        guard isPlainName(name) else {
            throw top.error("name", "expected a plain name (letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100): it names the run directory runs/NAME; got \"\(name.prefix(80))\"")
        }
        return name
    }

    /// A name is a directory's name (runs/NAME) and a label in the store:
    /// letters, digits, '.', '_' and '-', starting with a letter or digit.
    static func isPlainName(_ n: String) -> Bool {
        guard let first = n.unicodeScalars.first, n.count <= 100, CharacterSet.alphanumerics.contains(first), first.isASCII else { return false }
        return n.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) }
    }

    /// `init`: which must exist unless the job is only planned, and which
    /// every fine-tune has.
    static func parseInit(_ top: YAMLFields, _ kind: KindDefaults, planOnly: Bool) throws(ManifestError) -> String? {
        let initFrom = try top.path("init")
        if let i = initFrom, !planOnly, !FileManager.default.fileExists(atPath: i) {
            throw top.error("init", "no such run, checkpoint or Hugging Face directory: \(i)")
        }
        if kind.requiresInit && initFrom == nil {
            throw top.missing("init", "the model fine-tuning starts from: a Herd run or checkpoint directory, or a Hugging Face directory")
        }
        return initFrom
    }

    /// `precision`: fp32 (the default) or bf16.
    static func parsePrecision(_ top: YAMLFields) throws(ManifestError) -> Precision {
        try parseChoice(top, "precision", default: Precision.fp32,
                        expected: "fp32 or bf16 (bf16 weights in products and bf16 activations kept for backward; fp32 master weights, gradients and AdamW)")
    }

    /// `activation_checkpoint`: none (the default), selective or full.
    static func parseActivationCheckpoint(_ top: YAMLFields) throws(ManifestError) -> ActivationCheckpoint {
        try parseChoice(top, "activation_checkpoint", default: ActivationCheckpoint.none,
                        expected: "none, selective (recompute the norms, attention probabilities and SwiGLU products) or full (recompute each layer from its input)")
    }

    /// A top-level field naming one case of `T`.
    private static func parseChoice<T: RawRepresentable>(
        _ top: YAMLFields, _ key: String, default value: T, expected: String
    ) throws(ManifestError) -> T where T.RawValue == String {
        guard let text = try top.string(key) else { return value }
        guard let choice = T(rawValue: text) else { throw top.error(key, "expected \(expected), got \"\(text)\"") }
        return choice
    }

    /// `output`, by default runs/NAME, or the command line's --output: a
    /// run directory, never a file.
    static func parseOutput(_ top: YAMLFields, name: String, overrides: Overrides) throws(ManifestError) -> String {
        var output = try top.path("output") ?? YAMLFields.absolute("runs/\(name)", base: top.base)
        if let o = overrides.output { output = YAMLFields.absolute(o, base: top.base) }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw overrides.output != nil
                ? ManifestError(file: top.file, field: "--output", message: "\(output) is a file, not a run directory")
                : top.error("output", "\(output) is a file, not a run directory: give another output")
        }
        return output
    }
}
