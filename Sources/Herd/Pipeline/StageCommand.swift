import ArgumentParser

/// A `herd` command a pipeline stage runs, as a typed value. Its options
/// are the command line's own: `herd rlhf annotate` parses its argv into
/// `AnnotateOptions`, and a stage's argv is written from the same
/// declarations (`arguments`). So a flag is spelled in one place — its
/// property — and a property renamed or removed fails to compile where the
/// pipeline sets it, instead of failing when the pipeline runs.
public protocol StageCommand: ParsableArguments, Sendable {
    /// The subcommand's words after `herd`, e.g. ["rlhf", "annotate"].
    static var subcommand: [String] { get }
}

extension StageCommand {
    /// The argv after `herd`: the subcommand, every option as `--name value`
    /// (repeated options once per value, flags when set), then `--` and the
    /// words after it (an annotator's argv) if there are any.
    public var arguments: [String] {
        var options: [String] = [], trailing: [String] = []
        StageArgv.collect(self, &options, &trailing)
        return Self.subcommand + options + (trailing.isEmpty ? [] : ["--"] + trailing)
    }
}

/// Writes an options value's argv from its property wrappers, named as
/// ArgumentParser names them by default (`maxNewTokens` → `--max-new-tokens`).
enum StageArgv {
    static func collect(_ value: Any, _ options: inout [String], _ trailing: inout [String]) {
        for child in Mirror(reflecting: value).children {
            guard let label = child.label, label.hasPrefix("_") else { continue }
            let flag = "--" + kebab(String(label.dropFirst()))
            switch child.value {
            case let o as StageOptionWords: options += o.words(flag)
            case let g as StageOptionGroup: collect(g.group, &options, &trailing)
            case let a as StageTrailingWords: trailing += a.trailing
            default: continue
            }
        }
    }

    static func kebab(_ name: String) -> String {
        var out = ""
        for c in name {
            if c.isUppercase { out += "-" + c.lowercased() } else { out.append(c) }
        }
        return out
    }
}

/// A value that can stand after its option's name.
public protocol StageWord { var stageWord: String { get } }
extension String: StageWord { public var stageWord: String { self } }
extension Int: StageWord { public var stageWord: String { String(self) } }
extension UInt64: StageWord { public var stageWord: String { String(self) } }
extension Double: StageWord { public var stageWord: String { String(self) } }

protocol StageOptionWords { func words(_ flag: String) -> [String] }
protocol StageOptionGroup { var group: Any { get } }
protocol StageTrailingWords { var trailing: [String] { get } }

/// Values an option may hold: one word, none (nil), or one per repetition.
public protocol StageOptionValue { func words(_ flag: String) -> [String] }
extension String: StageOptionValue {}
extension Int: StageOptionValue {}
extension UInt64: StageOptionValue {}
extension Double: StageOptionValue {}
extension StageOptionValue where Self: StageWord {
    public func words(_ flag: String) -> [String] { [flag, stageWord] }
}
extension Optional: StageOptionValue where Wrapped: StageOptionValue {
    public func words(_ flag: String) -> [String] { self?.words(flag) ?? [] }
}
extension Array: StageOptionValue where Element: StageOptionValue {
    public func words(_ flag: String) -> [String] { flatMap { $0.words(flag) } }
}

extension Option: StageOptionWords where Value: StageOptionValue {
    func words(_ flag: String) -> [String] { wrappedValue.words(flag) }
}
extension Flag: StageOptionWords where Value == Bool {
    func words(_ flag: String) -> [String] { wrappedValue ? [flag] : [] }
}
extension OptionGroup: StageOptionGroup {
    var group: Any { wrappedValue }
}
extension Argument: StageTrailingWords where Value == [String] {
    var trailing: [String] { wrappedValue }
}
