import Foundation

/// What one JSON line holds for the document reader.
public enum JSONLineScan: Equatable {
    /// Only whitespace: skipped, not a bad line.
    case blank
    /// The text field's string value: bytes [start, end) of the line, between
    /// its quotes; `escaped` when it holds a backslash and must be unescaped.
    case text(start: Int, end: Int, escaped: Bool)
    /// Not a document, and why (with the column, counted in bytes from 1).
    case bad(String)
}

/// A validating JSON scanner for one line (RFC 8259), which finds the string
/// value of one top-level field without building any value.
///
/// Why not JSONSerialization/JSONDecoder: they allocate a dictionary per
/// line, bridge through Foundation and run at tens of MB/s; pretraining
/// corpora are terabytes. This scanner works on raw bytes, skips the inside
/// of strings eight bytes at a time, and allocates nothing per line.
///
/// It is strict where the tokenizer needs it to be: the whole line must be
/// valid JSON (a syntax error after the text field still makes the line
/// bad), strings must be valid UTF-8 without raw control characters, a
/// `\uD800`-style escape must be half of a surrogate pair (a lone surrogate
/// has no UTF-8 form), nesting is limited to `maxDepth` (checked with an
/// explicit stack: no recursion, so no stack overflow on `[[[[…`), and the
/// text field may appear only once at the top level (RFC 8259 leaves
/// duplicate names' meaning open; guessing would silently drop text).
///
/// A class: it owns its bracket stack and the buffer text is unescaped into,
/// reused for every line.
public final class JSONLineScanner {
    static let maxDepth = 512

    let key: [UInt8]
    let keyName: String
    /// stack[d] is true when the container at depth d is an object.
    private let stack: UnsafeMutablePointer<Bool>
    private var unescaped: UnsafeMutablePointer<UInt8>
    private var unescapedCapacity: Int

    public init(textKey: String) {
        key = Array(textKey.utf8)
        keyName = textKey
        stack = .allocate(capacity: Self.maxDepth)
        unescapedCapacity = 1 << 16
        unescaped = .allocate(capacity: unescapedCapacity)
    }

    deinit {
        stack.deallocate()
        unescaped.deallocate()
    }

    /// A refusal, carried by typed throws inside the scanner (as cheap as a return).
    struct Bad: Error {
        var reason: String
    }

    public func scan(_ line: UnsafeBufferPointer<UInt8>) -> JSONLineScan {
        guard let p = line.baseAddress else { return .blank }
        do {
            return try scan(p, line.count)
        } catch {
            return .bad(error.reason)
        }
    }

    /// The document's text: the value's bytes as they are, or unescaped into
    /// the scanner's buffer (valid until the next call).
    public func text(_ line: UnsafeBufferPointer<UInt8>, start: Int, end: Int, escaped: Bool) -> UnsafeBufferPointer<UInt8> {
        guard let p = line.baseAddress else { return UnsafeBufferPointer(start: nil, count: 0) }
        if !escaped { return UnsafeBufferPointer(start: p + start, count: end - start) }
        // Unescaping never lengthens: \n → 1 byte, \uXXXX (6) → ≤ 3, a pair (12) → 4.
        if end - start > unescapedCapacity {
            unescaped.deallocate()
            unescapedCapacity = max(end - start, unescapedCapacity * 2)
            unescaped = .allocate(capacity: unescapedCapacity)
        }
        let n = Self.unescape(p, from: start, to: end, into: unescaped)
        return UnsafeBufferPointer(start: unescaped, count: n)
    }

    // MARK: - The grammar

    private func scan(_ p: UnsafePointer<UInt8>, _ n: Int) throws(Bad) -> JSONLineScan {
        var i = Self.skipSpace(p, 0, n)
        if i == n { return .blank }
        let topIsObject = p[i] == UInt8(ascii: "{")
        var depth = 0
        var found: (start: Int, end: Int, escaped: Bool)?
        var keySeen = false
        var notString: String?
        // The value about to be scanned is the top-level text field's.
        var wantText = false

        // After '{' or ',' in an object (whitespace skipped): `"name" :`.
        @inline(__always) func member() throws(Bad) {
            guard i < n, p[i] == UInt8(ascii: "\"") else {
                throw Self.unexpected(p, i, n, expected: "a string naming a field")
            }
            var escaped = false
            let end = try Self.scanString(p, i + 1, n, &escaped)
            if depth == 1 && topIsObject && isKey(p, i + 1, end, escaped) {
                if keySeen { throw Bad(reason: "field \"\(keyName)\" appears twice") }
                keySeen = true
                wantText = true
            }
            i = Self.skipSpace(p, end + 1, n)
            guard i < n, p[i] == UInt8(ascii: ":") else { throw Self.unexpected(p, i, n, expected: "':' after a field name") }
            i = Self.skipSpace(p, i + 1, n)
        }

        outer: while true {
            // A value at i.
            guard i < n else { throw Self.unexpected(p, i, n, expected: "a value") }
            let isText = wantText
            wantText = false
            switch p[i] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let object = p[i] == UInt8(ascii: "{")
                if isText { notString = object ? "an object" : "an array" }
                guard depth < Self.maxDepth else {
                    throw Bad(reason: "not JSON: nested deeper than \(Self.maxDepth) at column \(i + 1)")
                }
                stack[depth] = object
                depth += 1
                i = Self.skipSpace(p, i + 1, n)
                if i < n && p[i] == (object ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    depth -= 1
                    i += 1
                } else if object {
                    try member()
                    continue outer
                } else {
                    continue outer
                }
            case UInt8(ascii: "\""):
                var escaped = false
                let end = try Self.scanString(p, i + 1, n, &escaped)
                if isText { found = (i + 1, end, escaped) }
                i = end + 1
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                if isText { notString = "a number" }
                i = try Self.scanNumber(p, i, n)
            case UInt8(ascii: "t"):
                if isText { notString = "true" }
                i = try Self.literal(p, i, n, "true")
            case UInt8(ascii: "f"):
                if isText { notString = "false" }
                i = try Self.literal(p, i, n, "false")
            case UInt8(ascii: "n"):
                if isText { notString = "null" }
                i = try Self.literal(p, i, n, "null")
            default:
                throw Self.unexpected(p, i, n, expected: "a value")
            }
            // After a value: ',' or the closing bracket, or the end of the line.
            while true {
                i = Self.skipSpace(p, i, n)
                if depth == 0 {
                    if i < n { throw Self.unexpected(p, i, n, expected: "the end of the line after the JSON value") }
                    break outer
                }
                let object = stack[depth - 1]
                guard i < n else {
                    throw Bad(reason: "not JSON: the line ends inside an \(object ? "object" : "array") (column \(i + 1))")
                }
                if p[i] == UInt8(ascii: ",") {
                    let comma = i
                    i = Self.skipSpace(p, i + 1, n)
                    if i < n && (p[i] == UInt8(ascii: "}") || p[i] == UInt8(ascii: "]")) {
                        // Named apart: JSON5 and some parsers accept it, RFC 8259 does not.
                        throw Bad(reason: "not JSON: a trailing comma at column \(comma + 1)")
                    }
                    if object { try member() }
                    continue outer
                }
                if p[i] == (object ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    depth -= 1
                    i += 1
                    continue
                }
                throw Self.unexpected(p, i, n, expected: object ? "',' or '}'" : "',' or ']'")
            }
        }
        guard topIsObject else { throw Bad(reason: "not a JSON object (the line holds \(Self.kind(p[Self.skipSpace(p, 0, n)])))") }
        if let notString { throw Bad(reason: "field \"\(keyName)\" is \(notString), not a string") }
        guard let found else { throw Bad(reason: "no field \"\(keyName)\"") }
        return .text(start: found.start, end: found.end, escaped: found.escaped)
    }

    private static func kind(_ c: UInt8) -> String {
        switch c {
        case UInt8(ascii: "["): return "an array"
        case UInt8(ascii: "\""): return "a string"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "a boolean"
        case UInt8(ascii: "n"): return "null"
        default: return "a number"
        }
    }

    /// Whether the field name p[start..<end] is the text key (names with
    /// escapes, rare, are unescaped first: "\u0074ext" is "text").
    private func isKey(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ escaped: Bool) -> Bool {
        if !escaped {
            return end - start == key.count && key.withUnsafeBufferPointer { k in
                guard let kb = k.baseAddress else { return true }   // "" matches ""
                return memcmp(p + start, kb, k.count) == 0
            }
        }
        guard end - start >= key.count else { return false }   // unescaping only shortens
        var name = [UInt8](repeating: 0, count: end - start)
        let count = name.withUnsafeMutableBufferPointer { buf in
            buf.baseAddress.map { Self.unescape(p, from: start, to: end, into: $0) } ?? 0
        }
        return name.prefix(count).elementsEqual(key)
    }

    @inline(__always)
    static func skipSpace(_ p: UnsafePointer<UInt8>, _ from: Int, _ n: Int) -> Int {
        var i = from
        while i < n {
            switch p[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return i
            }
        }
        return i
    }

    static func describe(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> String {
        guard i < n else { return "the end of the line" }
        let c = p[i]
        return c >= 0x21 && c < 0x7F ? "'\(Character(Unicode.Scalar(c)))'" : String(format: "byte 0x%02X", c)
    }

    static func unexpected(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int, expected: String) -> Bad {
        Bad(reason: "not JSON: expected \(expected) at column \(i + 1), found \(describe(p, i, n))")
    }

    static func literal(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int, _ word: StaticString) throws(Bad) -> Int {
        let w = word.utf8Start
        let count = word.utf8CodeUnitCount
        guard i + count <= n, memcmp(p + i, w, count) == 0 else {
            throw Bad(reason: "not JSON: expected a value at column \(i + 1), found \(describe(p, i, n)) (not \(word))")
        }
        return i + count
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; returns the index after it.
    static func scanNumber(_ p: UnsafePointer<UInt8>, _ start: Int, _ n: Int) throws(Bad) -> Int {
        var i = start
        @inline(__always) func isDigit(_ j: Int) -> Bool { j < n && p[j] &- UInt8(ascii: "0") < 10 }
        func bad(_ what: String) -> Bad {
            Bad(reason: "not JSON: a number at column \(start + 1) \(what) (column \(i + 1), found \(describe(p, i, n)))")
        }
        if p[i] == UInt8(ascii: "-") { i += 1 }
        guard isDigit(i) else { throw bad("needs a digit") }
        if p[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while isDigit(i) { i += 1 }
        }
        if i < n && p[i] == UInt8(ascii: ".") {
            i += 1
            guard isDigit(i) else { throw bad("needs a digit after '.'") }
            while isDigit(i) { i += 1 }
        }
        if i < n && (p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")) {
            i += 1
            if i < n && (p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-")) { i += 1 }
            guard isDigit(i) else { throw bad("needs a digit in its exponent") }
            while isDigit(i) { i += 1 }
        }
        return i
    }

    // MARK: - Strings

    /// Scans a string whose opening quote is at from - 1; returns the index of
    /// its closing quote. Sets `escaped` if it holds a backslash.
    @inline(__always)
    static func scanString(_ p: UnsafePointer<UInt8>, _ from: Int, _ n: Int, _ escaped: inout Bool) throws(Bad) -> Int {
        var i = from
        let raw = UnsafeRawPointer(p)
        while true {
            // Eight bytes at a time while none is '"', '\\', a control
            // character or non-ASCII: the bulk of a document's text. The
            // lowest flagged byte is always a true hit (the borrows of the
            // subtractions only run towards higher bytes), so jump to it.
            while i + 8 <= n {
                let x = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self).littleEndian
                let quote = x ^ 0x2222_2222_2222_2222
                let backslash = x ^ 0x5C5C_5C5C_5C5C_5C5C
                let ones: UInt64 = 0x0101_0101_0101_0101
                let control = (x &- 0x2020_2020_2020_2020) & ~x        // a byte < 0x20
                let isQuote = (quote &- ones) & ~quote                 // a byte == '"'
                let isBackslash = (backslash &- ones) & ~backslash     // a byte == '\\'
                let flags = (x | control | isQuote | isBackslash) & UTF8Validation.highBits
                if flags == 0 {
                    i += 8
                } else {
                    i += flags.trailingZeroBitCount >> 3
                    break
                }
            }
            guard i < n else {
                throw Bad(reason: "not JSON: the string that starts at column \(from) is not closed")
            }
            let c = p[i]
            if c == UInt8(ascii: "\"") { return i }
            if c == UInt8(ascii: "\\") {
                escaped = true
                i = try scanEscape(p, i, n)
            } else if c < 0x20 {
                throw Bad(reason: "not JSON: a control character (\(describe(p, i, n))) in a string at column \(i + 1); it must be escaped")
            } else if c >= 0x80 {
                let len = UTF8Validation.sequenceLength(p, i, n)
                if len == 0 { throw Bad(reason: "invalid UTF-8 at column \(i + 1) (\(describe(p, i, n)))") }
                i += len
            } else {
                i += 1
            }
        }
    }

    @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(c - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// The code unit of `\uXXXX` at p[i] (the backslash), or nil if not well formed.
    static func hex4(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> UInt32? {
        guard i + 6 <= n, p[i] == UInt8(ascii: "\\"), p[i + 1] == UInt8(ascii: "u") else { return nil }
        var v: UInt32 = 0
        for k in 2..<6 {
            guard let h = hexValue(p[i + k]) else { return nil }
            v = v << 4 | h
        }
        return v
    }

    /// Validates the escape whose backslash is at p[i]; returns the index after it.
    static func scanEscape(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) throws(Bad) -> Int {
        guard i + 1 < n else { throw Bad(reason: "not JSON: the line ends inside an escape at column \(i + 1)") }
        switch p[i + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
             UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            return i + 2
        case UInt8(ascii: "u"):
            guard let u = hex4(p, i, n) else {
                throw Bad(reason: "not JSON: \\u at column \(i + 1) needs four hex digits")
            }
            switch u {
            case 0xD800...0xDBFF:
                guard let low = hex4(p, i + 6, n), (0xDC00...0xDFFF).contains(low) else {
                    throw Bad(reason: "a lone surrogate (\\u\(String(u, radix: 16, uppercase: true)) without a low surrogate after it) at column \(i + 1)")
                }
                return i + 12
            case 0xDC00...0xDFFF:
                throw Bad(reason: "a lone surrogate (\\u\(String(u, radix: 16, uppercase: true)) without a high surrogate before it) at column \(i + 1)")
            default:
                return i + 6
            }
        default:
            throw Bad(reason: "not JSON: invalid escape \\\(describe(p, i + 1, n)) at column \(i + 1)")
        }
    }

    /// Writes the UTF-8 of the (validated) string body p[from..<to] to out;
    /// returns the byte count, never more than to - from.
    static func unescape(_ p: UnsafePointer<UInt8>, from: Int, to: Int, into out: UnsafeMutablePointer<UInt8>) -> Int {
        var i = from, o = 0
        while i < to {
            // Copy the run up to the next backslash in one go.
            let run: Int
            if let hit = memchr(p + i, Int32(UInt8(ascii: "\\")), to - i) {
                run = UnsafePointer<UInt8>(hit.assumingMemoryBound(to: UInt8.self)) - (p + i)
            } else {
                run = to - i
            }
            (out + o).update(from: p + i, count: run)
            o += run
            i += run
            guard i + 1 < to else { break }
            let e = p[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out[o] = 0x08
            case UInt8(ascii: "f"): out[o] = 0x0C
            case UInt8(ascii: "n"): out[o] = 0x0A
            case UInt8(ascii: "r"): out[o] = 0x0D
            case UInt8(ascii: "t"): out[o] = 0x09
            case UInt8(ascii: "u"):
                guard var scalar = hex4(p, i - 2, to) else { continue }
                i += 4
                if (0xD800...0xDBFF).contains(scalar), let low = hex4(p, i, to) {
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                }
                o += encode(scalar, out + o)
                continue
            default: out[o] = e   // '"', '\\', '/'
            }
            o += 1
        }
        return o
    }

    @inline(__always)
    static func encode(_ v: UInt32, _ out: UnsafeMutablePointer<UInt8>) -> Int {
        switch v {
        case 0..<0x80:
            out[0] = UInt8(v)
            return 1
        case 0x80..<0x800:
            out[0] = UInt8(0xC0 | v >> 6)
            out[1] = UInt8(0x80 | v & 0x3F)
            return 2
        case 0x800..<0x10000:
            out[0] = UInt8(0xE0 | v >> 12)
            out[1] = UInt8(0x80 | v >> 6 & 0x3F)
            out[2] = UInt8(0x80 | v & 0x3F)
            return 3
        default:
            out[0] = UInt8(0xF0 | v >> 18)
            out[1] = UInt8(0x80 | v >> 12 & 0x3F)
            out[2] = UInt8(0x80 | v >> 6 & 0x3F)
            out[3] = UInt8(0x80 | v & 0x3F)
            return 4
        }
    }
}
