import Foundation
import Yams

/// Typed, path-aware reads of a YAML mapping. Every error names the file and
/// the dotted field path, and says what was expected; unknown keys are
/// rejected so that a misspelt field is not silently ignored.
struct YAMLFields {
    let mapping: Node.Mapping
    let path: String
    let file: String
    /// The directory relative paths in the file are taken from (absolute):
    /// the directory `herd` ran in, or the server's. Never the process's
    /// current directory read later.
    let base: String

    init(_ node: Node, path: String, file: String, base: String) throws(ManifestError) {
        guard let m = node.mapping else {
            throw ManifestError(file: file, field: path, message: "expected a mapping of fields, found \(Self.describe(node))")
        }
        // YAML leaves a repeated key to the reader; a second `monitor:` would silently lose to the first.
        var seen = Set<String>()
        for (k, _) in m {
            guard let key = k.string else { continue }
            if !seen.insert(key).inserted {
                throw ManifestError(file: file, field: path.isEmpty ? key : "\(path).\(key)", message: "given twice; give each field once")
            }
        }
        mapping = m; self.path = path; self.file = file; self.base = base
    }

    /// The text of a YAML file (a manifest, a cluster file).
    static func text(path: String, what: String) throws(ManifestError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ManifestError(file: path, field: "", message: "cannot read the \(what)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ManifestError(file: path, field: "", message: "the \(what) is not UTF-8 text")
        }
        return text
    }

    /// The top-level mapping of a YAML document. The text is checked
    /// against `YAMLLimits` before it is composed: a document nested
    /// thousands deep would overflow the composer's stack.
    static func top(yaml text: String, file: String, what: String, base: String) throws(ManifestError) -> YAMLFields {
        try YAMLLimits.check(text, file: file, what: what)
        let root: Node
        do {
            guard let n = try Yams.compose(yaml: text) else { throw ManifestError(file: file, field: "", message: "the \(what) is empty") }
            root = n
        } catch let e as ManifestError { throw e } catch {
            throw ManifestError(file: file, field: "", message: "not valid YAML: \(error)")
        }
        return try YAMLFields(root, path: "", file: file, base: base)
    }

    /// A section the manifest left out, read as all defaults.
    func empty(_ key: String) -> YAMLFields {
        YAMLFields(mapping: Node.Mapping([]), path: field(key), file: file, base: base)
    }

    private init(mapping: Node.Mapping, path: String, file: String, base: String) {
        self.mapping = mapping; self.path = path; self.file = file; self.base = base
    }

    /// A path-valued field, made absolute against `base` (`~` expanded).
    func path(_ key: String) throws(ManifestError) -> String? {
        try string(key).map { Self.absolute($0, base: base) }
    }

    func requiredPath(_ key: String, _ what: String) throws(ManifestError) -> String {
        Self.absolute(try requiredString(key, what), base: base)
    }

    static func absolute(_ p: String, base: String) -> String {
        let expanded = (p as NSString).expandingTildeInPath
        return URL(fileURLWithPath: expanded, relativeTo: URL(fileURLWithPath: base.hasSuffix("/") ? base : base + "/"))
            .standardizedFileURL.path
    }

    func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ key: String, _ message: String) -> ManifestError {
        ManifestError(file: file, field: field(key), message: message)
    }

    func has(_ key: String) -> Bool { mapping[key] != nil }

    func rejectUnknown(allowed: [String]) throws(ManifestError) {
        for (k, _) in mapping {
            let key = k.string ?? "\(k)"
            if !allowed.contains(key) {
                throw error(key, "unknown field; expected one of: \(allowed.joined(separator: ", "))")
            }
        }
    }

    private func scalar(_ key: String, expected: String) throws(ManifestError) -> Node.Scalar? {
        guard let node = mapping[key] else { return nil }
        guard let s = node.scalar else { throw error(key, "expected \(expected), found \(Self.describe(node))") }
        if s.string.isEmpty || s.string == "~" || s.string == "null" { return nil }
        return s
    }

    func string(_ key: String) throws(ManifestError) -> String? {
        try scalar(key, expected: "a string")?.string
    }

    func int(_ key: String, min: Int? = nil, max: Int? = nil) throws(ManifestError) -> Int? {
        guard let s = try scalar(key, expected: "an integer") else { return nil }
        let text = s.string.replacingOccurrences(of: "_", with: "")
        guard s.style == .plain, let v = Int(text) else {
            throw error(key, "expected an integer, found \"\(s.string)\"")
        }
        if let min, v < min { throw error(key, "must be at least \(min), got \(v)") }
        if let max, v > max { throw error(key, "must be at most \(max), got \(v)") }
        return v
    }

    func double(_ key: String, min: Double? = nil, max: Double? = nil) throws(ManifestError) -> Double? {
        guard let s = try scalar(key, expected: "a number") else { return nil }
        guard s.style == .plain, let v = Double(s.string.replacingOccurrences(of: "_", with: "")), v.isFinite else {
            throw error(key, "expected a number, found \"\(s.string)\"")
        }
        if let min, v < min { throw error(key, "must be at least \(min), got \(v)") }
        if let max, v > max { throw error(key, "must be at most \(max), got \(v)") }
        return v
    }

    func bool(_ key: String) throws(ManifestError) -> Bool? {
        guard let s = try scalar(key, expected: "true or false") else { return nil }
        switch s.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error(key, "expected true or false, found \"\(s.string)\"")
        }
    }

    /// A list of strings (a single string reads as a list of one).
    func strings(_ key: String) throws(ManifestError) -> [String]? {
        guard let node = mapping[key] else { return nil }
        if let s = node.string { return [s] }
        guard let seq = node.sequence, seq.allSatisfy({ $0.string != nil }) else {
            throw error(key, "expected a list of names, found \(Self.describe(node))")
        }
        return seq.compactMap(\.string)
    }

    /// A list of mappings (`data.mix`), each read with its index in the path.
    func sections(_ key: String) throws(ManifestError) -> [YAMLFields]? {
        guard let node = mapping[key] else { return nil }
        guard let seq = node.sequence else { throw error(key, "expected a list of mappings, found \(Self.describe(node))") }
        var out: [YAMLFields] = []
        for (i, item) in seq.enumerated() { out.append(try YAMLFields(item, path: field(key) + "[\(i)]", file: file, base: base)) }
        return out
    }

    func section(_ key: String) throws(ManifestError) -> YAMLFields? {
        guard let node = mapping[key] else { return nil }
        return try YAMLFields(node, path: field(key), file: file, base: base)
    }

    /// A section that may be left out, read as all defaults then.
    func sectionOrEmpty(_ key: String) throws(ManifestError) -> YAMLFields {
        try section(key) ?? empty(key)
    }

    func missing(_ key: String, _ what: String) -> ManifestError {
        error(key, "required field is missing (\(what))")
    }

    func requiredSection(_ key: String, _ what: String) throws(ManifestError) -> YAMLFields {
        guard let s = try section(key) else { throw error(key, "required section is missing (\(what))") }
        return s
    }

    func requiredString(_ key: String, _ what: String) throws(ManifestError) -> String {
        guard let v = try string(key) else { throw missing(key, what) }
        return v
    }

    func requiredInt(_ key: String, min: Int? = nil, max: Int? = nil, _ what: String) throws(ManifestError) -> Int {
        guard let v = try int(key, min: min, max: max) else { throw missing(key, what) }
        return v
    }

    func requiredDouble(_ key: String, min: Double? = nil, _ what: String) throws(ManifestError) -> Double {
        guard let v = try double(key, min: min) else { throw missing(key, what) }
        return v
    }

    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return "the value \"\(s.string)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }
}
