import Foundation

/// The synthetic world's standing instructions, for Ghost Attention: a
/// short tag before a user message that changes the form of every answer
/// from then on ("(end with !) Capitals: dog" → "DOG!"), whatever the task.
/// The world's annotator checks the form; a byte-level model learns it
/// from a few hundred demonstrations.
public enum StandingInstruction: String, CaseIterable, Sendable {
    case exclaim, brackets, okay

    /// The tag a user writes before the message.
    public var text: String {
        switch self {
        case .exclaim: return "(end with !)"
        case .brackets: return "(in brackets)"
        case .okay: return "(start with OK)"
        }
    }

    public func apply(_ answer: String) -> String {
        switch self {
        case .exclaim: return answer + "!"
        case .brackets: return "[" + answer + "]"
        case .okay: return "OK " + answer
        }
    }

    /// The answer without the instruction's change, nil when it does not follow it.
    public func undo(_ answer: String) -> String? {
        switch self {
        case .exclaim: return answer.hasSuffix("!") ? String(answer.dropLast()) : nil
        case .brackets: return answer.hasPrefix("[") && answer.hasSuffix("]") && answer.count >= 2 ? String(answer.dropFirst().dropLast()) : nil
        case .okay: return answer.hasPrefix("OK ") ? String(answer.dropFirst(3)) : nil
        }
    }

    /// A user message with its instruction tag taken off.
    public static func split(_ user: String) -> (StandingInstruction?, String) {
        let u = user.trimmingCharacters(in: .whitespaces)
        for i in allCases where u.hasPrefix(i.text) {
            return (i, String(u.dropFirst(i.text.count)).trimmingCharacters(in: .whitespaces))
        }
        return (nil, u)
    }

    /// The instruction a dialogue stands under: the tag of its first user message.
    public static func standing(in dialogue: [ChatMessage]) -> StandingInstruction? {
        dialogue.first { $0.role == .user }.flatMap { split($0.content).0 }
    }

    /// A user message under an instruction: the tag, a space, the message.
    public func attach(to user: String) -> String { text + " " + user }
}
