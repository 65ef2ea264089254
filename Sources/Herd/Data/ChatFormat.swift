/// One turn of a dialogue.
public struct ChatMessage: Codable, Sendable, Equatable {
    public enum Role: String, Codable, Sendable { case system, user, assistant }
    public var role: Role
    public var content: String
    public init(_ role: Role, _ content: String) { self.role = role; self.content = content }
}

public enum ChatFormatError: Error, Equatable, CustomStringConvertible {
    case order(index: Int, expected: String, found: ChatMessage.Role)
    case empty
    public var description: String {
        switch self {
        case let .order(i, expected, found): return "message \(i): expected \(expected), found \(found.rawValue) (turns alternate user, assistant, ... after an optional system message)"
        case .empty: return "the dialogue has no user message"
        }
    }
}

/// The Llama 2 chat format as Meta's reference code (llama/generation.py,
/// chat_completion) builds it: a system message is folded into the first
/// user turn as "<<SYS>>\n{system}\n<</SYS>>\n\n{user}"; each (user,
/// assistant) pair is BOS + "[INST] {user} [/INST] {answer} " + EOS; a last
/// user turn is BOS + "[INST] {user} [/INST]" for the model to answer.
/// Contents are stripped of surrounding whitespace, as Meta's code does.
public enum ChatFormat {
    public static let systemOpen = "<<SYS>>\n", systemClose = "\n<</SYS>>\n\n"

    /// The dialogue as (user, assistant) pairs and a last unanswered user
    /// turn, the system message folded into the first user turn.
    static func pairs(_ dialog: [ChatMessage]) throws(ChatFormatError) -> (pairs: [(String, String)], last: String?) {
        var turns = dialog
        if let first = turns.first, first.role == .system {
            guard turns.count > 1, turns[1].role == .user else { throw .order(index: 1, expected: "user", found: turns.count > 1 ? turns[1].role : .system) }
            turns = [ChatMessage(.user, systemOpen + first.content + systemClose + turns[1].content)] + turns.dropFirst(2)
        }
        guard !turns.isEmpty else { throw .empty }
        for (i, m) in turns.enumerated() {
            let expected: ChatMessage.Role = i % 2 == 0 ? .user : .assistant
            if m.role != expected {
                throw .order(index: i + (dialog.first?.role == .system ? 1 : 0), expected: expected.rawValue, found: m.role)
            }
        }
        let pairs = stride(from: 0, to: turns.count - 1, by: 2).map { (strip(turns[$0].content), strip(turns[$0 + 1].content)) }
        return (pairs, turns.count % 2 == 1 ? strip(turns[turns.count - 1].content) : nil)
    }

    /// Token ids, and for each whether it belongs to an assistant answer
    /// (its words and its EOS) — the tokens supervised fine-tuning learns.
    public static func encode(_ dialog: [ChatMessage], tokenizer t: SentencePieceTokenizer) throws(ChatFormatError) -> (tokens: [TokenID], assistant: [Bool]) {
        let (pairs, last) = try pairs(dialog)
        var tokens: [TokenID] = [], mask: [Bool] = []
        for (user, answer) in pairs {
            let prompt = "[INST] \(user) [/INST]"
            let whole = t.encode(prompt + " \(answer) ", bos: true, eos: true)
            // The prompt's own encoding is (almost always) a prefix of the
            // pair's: what follows it is the answer.
            let head = t.encode(prompt, bos: true, eos: false)
            var k = 0
            while k < head.count && k < whole.count && head[k] == whole[k] { k += 1 }
            tokens += whole
            mask += (0..<whole.count).map { $0 >= k }
        }
        if let last {
            let ids = t.encode("[INST] \(last) [/INST]", bos: true, eos: false)
            tokens += ids
            mask += [Bool](repeating: false, count: ids.count)
        }
        return (tokens, mask)
    }

    /// For tokenizers without BOS and EOS ids (byte- and char-level): the
    /// same template as text, with STX (U+0002) where BOS goes and ETX
    /// (U+0003) where EOS goes — characters ordinary text never holds, so a
    /// byte-level model learns to end its answer with ETX.
    public static let textBOS = "\u{02}", textEOS = "\u{03}"

    /// The chat format for any tokenizer: Meta's exactly for SentencePiece,
    /// its text form with STX/ETX otherwise.
    public static func encode(_ dialog: [ChatMessage], tokenizer t: any Tokenizer) throws -> (tokens: [TokenID], assistant: [Bool]) {
        if let spm = t as? SentencePieceTokenizer { return try encode(dialog, tokenizer: spm) }
        let (pairs, last) = try pairs(dialog)
        var tokens: [TokenID] = [], mask: [Bool] = []
        func add(_ text: String, _ learned: Bool) throws {
            let ids = try t.encode(text)
            tokens += ids
            mask += [Bool](repeating: learned, count: ids.count)
        }
        for (user, answer) in pairs {
            try add(textBOS + "[INST] \(user) [/INST]", false)
            try add(" \(answer) " + textEOS, true)
        }
        if let last { try add(textBOS + "[INST] \(last) [/INST]", false) }
        return (tokens, mask)
    }

    /// An assistant mask reduced to its last answer: the final run of
    /// learned tokens (the answer and its end-of-answer token).
    public static func lastAnswerOnly(_ mask: [Bool]) -> [Bool] {
        guard let end = mask.lastIndex(of: true) else { return mask }
        var start = end
        while start > 0 && mask[start - 1] { start -= 1 }
        return mask.indices.map { $0 >= start && $0 <= end }
    }

    static func strip(_ s: String) -> String { s.trimmingCharacters(in: .whitespacesAndNewlines) }
}

import Foundation
