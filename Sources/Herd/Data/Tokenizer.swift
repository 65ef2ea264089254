/// Text ↔ token ids. Herd's small models use a character- or byte-level
/// vocabulary; Llama 2's SentencePiece tokenizer plugs in behind the same protocol.
public protocol Tokenizer: Sendable {
    /// "char", "byte", ...: what a manifest's `data.tokenizer` names.
    var kind: String { get }
    var vocabSize: Int { get }
    func encode(_ text: String) throws(TokenizerError) -> [TokenID]
    func decode(_ ids: [TokenID]) -> String
}

public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case unknownCharacter(Unicode.Scalar, offset: Int)
    case badVocabulary(String)

    public var description: String {
        switch self {
        case let .unknownCharacter(c, offset):
            return "character U+\(String(c.value, radix: 16, uppercase: true)) at offset \(offset) is not in the tokenizer's vocabulary"
        case let .badVocabulary(why): return "bad tokenizer vocabulary: \(why)"
        }
    }
}

/// One id per Unicode scalar seen in the corpus, in code-point order (as
/// nanoGPT's shakespeare_char prepares it, so the ids match).
public struct CharTokenizer: Tokenizer, Codable, Equatable {
    public var kind: String { "char" }
    public let characters: [Unicode.Scalar]
    private let index: [UInt32: TokenID]

    public init(corpus: String) {
        let unique = Set(corpus.unicodeScalars)
        self.init(characters: unique.sorted { $0.value < $1.value })
    }

    public init(characters: [Unicode.Scalar]) {
        self.characters = characters
        var index: [UInt32: TokenID] = [:]
        for (i, c) in characters.enumerated() { index[c.value] = TokenID(i) }
        self.index = index
    }

    public var vocabSize: Int { characters.count }

    public func encode(_ text: String) throws(TokenizerError) -> [TokenID] {
        var out: [TokenID] = []
        out.reserveCapacity(text.utf8.count)
        var offset = 0
        for c in text.unicodeScalars {
            guard let id = index[c.value] else { throw .unknownCharacter(c, offset: offset) }
            out.append(id)
            offset += 1
        }
        return out
    }

    public func decode(_ ids: [TokenID]) -> String {
        var s = String.UnicodeScalarView()
        for id in ids where id >= 0 && Int(id) < characters.count { s.append(characters[Int(id)]) }
        return String(s)
    }

    enum CodingKeys: String, CodingKey { case kind, characters }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let text = try c.decode(String.self, forKey: .characters)
        self.init(characters: Array(text.unicodeScalars))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        var s = String.UnicodeScalarView()
        s.append(contentsOf: characters)
        try c.encode(String(s), forKey: .characters)
    }
}

/// The 256 byte values of the UTF-8 encoding: no vocabulary to build, any text.
public struct ByteTokenizer: Tokenizer, Equatable {
    public var kind: String { "byte" }
    public init() {}
    public var vocabSize: Int { 256 }
    public func encode(_ text: String) throws(TokenizerError) -> [TokenID] { text.utf8.map { TokenID($0) } }
    public func decode(_ ids: [TokenID]) -> String {
        String(decoding: ids.compactMap { (0..<256).contains($0) ? UInt8($0) : nil }, as: UTF8.self)
    }
}
