import Foundation

/// What Herd reads of a YAML file before composing it: a manifest, a
/// pipeline manifest or a cluster file is a page of settings, so anything
/// far beyond that is refused with the line that crossed the limit. The
/// composer recurses once per level of nesting: a document nested 5,000
/// deep overflowed its stack (a crash of `herd validate`, and of `herd
/// serve` on one POST). Anchors and aliases are refused too: no manifest
/// needs them, and an alias of an alias of ... is how a few lines expand
/// into billions of nodes.
enum YAMLLimits {
    static let maxBytes = 1 << 20
    /// Levels of `[` / `{` open at once.
    static let maxFlowDepth = 32
    /// Columns of indentation: block nesting, two or more columns a level.
    static let maxIndent = 128
    /// `- ` or `? ` opening nested collections on one line (`- - - x`).
    static let maxInlineLevels = 16

    static func check(_ text: String, file: String, what: String) throws(ManifestError) {
        func refuse(_ line: Int, _ why: String) -> ManifestError {
            ManifestError(file: file, field: "", message: "line \(line): \(why); a \(what) is a page of settings, so Herd refuses this before reading it as YAML")
        }
        let bytes = Array(text.utf8)
        guard bytes.count <= maxBytes else {
            throw ManifestError(file: file, field: "", message: "the \(what) has \(bytes.count) bytes; Herd reads at most \(maxBytes)")
        }
        var flow = 0, line = 1, i = 0
        var quote: UInt8 = 0   // inside '...' or "..." (0: not)
        while i < bytes.count {
            // The start of a line: its indentation, then any `- ` / `? ` that open nested collections.
            var col = 0
            while i < bytes.count && bytes[i] == 0x20 { col += 1; i += 1 }
            if quote == 0 && flow == 0 {
                guard col <= maxIndent else { throw refuse(line, "indented \(col) columns (at most \(maxIndent))") }
                var levels = 0
                while i + 1 < bytes.count, bytes[i] == 0x2D || bytes[i] == 0x3F, bytes[i + 1] == 0x20 || bytes[i + 1] == 0x09 {
                    levels += 1
                    i += 2
                    while i < bytes.count && (bytes[i] == 0x20 || bytes[i] == 0x09) { i += 1 }
                }
                guard levels <= maxInlineLevels else { throw refuse(line, "\(levels) nested lists opened on one line (at most \(maxInlineLevels))") }
            }
            var previous: UInt8 = 0x20
            lineLoop: while i < bytes.count {
                let c = bytes[i]
                i += 1
                if c == 0x0A { line += 1; break lineLoop }
                if quote != 0 {
                    if c == 0x5C && quote == 0x22 { i += 1 }   // \" inside a double-quoted string
                    else if c == quote { quote = 0 }
                    previous = c
                    continue
                }
                let atNodeStart = previous == 0x20 || previous == 0x09 || previous == 0x5B || previous == 0x7B || previous == 0x2C || previous == 0x3A
                if c == 0x23 && (previous == 0x20 || previous == 0x09) {   // a comment: the rest of the line
                    while i < bytes.count && bytes[i] != 0x0A { i += 1 }
                } else if (c == 0x22 || c == 0x27) && atNodeStart {
                    quote = c
                } else if c == 0x5B || c == 0x7B {
                    flow += 1
                    guard flow <= maxFlowDepth else { throw refuse(line, "more than \(maxFlowDepth) levels of [ and { open at once") }
                } else if c == 0x5D || c == 0x7D {
                    flow = max(0, flow - 1)
                } else if (c == 0x26 || c == 0x2A) && atNodeStart, i < bytes.count, bytes[i] != 0x20, bytes[i] != 0x0A, bytes[i] != 0x09 {
                    throw refuse(line, "a YAML \(c == 0x26 ? "anchor (&)" : "alias (*)"); write the value out (quote a string that starts with \(c == 0x26 ? "&" : "*"))")
                }
                previous = c
            }
        }
    }
}
