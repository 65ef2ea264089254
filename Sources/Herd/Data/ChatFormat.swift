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

    /// Token ids, and for each whether it belongs to an assistant answer
    /// (its words and its EOS) — the tokens supervised fine-tuning learns.
    public static func encode(_ dialog: [ChatMessage], tokenizer t: SentencePieceTokenizer) throws(ChatFormatError) -> (tokens: [TokenID], assistant: [Bool]) {
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
        var tokens: [TokenID] = [], mask: [Bool] = []
        var i = 0
        while i + 1 < turns.count {
            let prompt = "[INST] \(strip(turns[i].content)) [/INST]"
            let whole = t.encode(prompt + " \(strip(turns[i + 1].content)) ", bos: true, eos: true)
            // The prompt's own encoding is (almost always) a prefix of the
            // pair's: what follows it is the answer.
            let head = t.encode(prompt, bos: true, eos: false)
            var k = 0
            while k < head.count && k < whole.count && head[k] == whole[k] { k += 1 }
            tokens += whole
            mask += (0..<whole.count).map { $0 >= k }
            i += 2
        }
        if i < turns.count {
            let last = t.encode("[INST] \(strip(turns[i].content)) [/INST]", bos: true, eos: false)
            tokens += last
            mask += [Bool](repeating: false, count: last.count)
        }
        return (tokens, mask)
    }

    static func strip(_ s: String) -> String { s.trimmingCharacters(in: .whitespacesAndNewlines) }
}

import Foundation
