import Foundation

/// A line of a JSON-lines file that is not what its format says: the file,
/// the 1-based line, and what is wrong.
public struct RecordError: Error, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String
    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}

/// The JSON-lines records of ../shared/RLHF.md that SFT reads. A dialogue
/// is a list of {role, content} turns: an optional system message, then
/// user and assistant alternating.
public struct PromptRecord: Codable, Sendable, Equatable {
    public var id: String
    public var dialogue: [ChatMessage]
    /// Written to elicit an unsafe answer (the paper's IS_SAFETY(p)).
    public var safety: Bool?
    /// Looks unsafe but deserves an answer: a refusal here is a false
    /// refusal (the paper's borderline set).
    public var borderline: Bool?

    public init(id: String, dialogue: [ChatMessage], safety: Bool? = nil, borderline: Bool? = nil) {
        self.id = id; self.dialogue = dialogue; self.safety = safety; self.borderline = borderline
    }
}

/// A demonstration for SFT: a dialogue that ends with the assistant's answer.
public struct Demonstration: Codable, Sendable, Equatable {
    /// Which assistant turns the loss is on: every answer (SFT), or only
    /// the last one — Ghost Attention's dialogues, whose earlier turns
    /// (answers included) were sampled with the instruction on every user
    /// turn and must not be learned.
    public enum LossScope: String, Codable, Sendable { case allAnswers = "all_answers", lastAnswer = "last_answer" }

    public var id: String
    public var dialogue: [ChatMessage]
    public var loss: LossScope?

    public init(id: String, dialogue: [ChatMessage], loss: LossScope? = nil) { self.id = id; self.dialogue = dialogue; self.loss = loss }

    /// The tokens in the chat format and which of them carry the loss.
    public func encoded(tokenizer: any Tokenizer) throws -> (tokens: [TokenID], learned: [Bool]) {
        let (tokens, learned) = try ChatFormat.encode(dialogue, tokenizer: tokenizer)
        return (tokens, loss == .lastAnswer ? ChatFormat.lastAnswerOnly(learned) : learned)
    }
}

/// A multi-turn dialogue under a standing instruction, Ghost Attention's
/// input: the instruction (any text: "(end with !)", "Answer as a pirate")
/// and the user's turns; the assistant's answers are sampled. The
/// instruction is written before a user message, then a space.
public struct InstructedDialogue: Codable, Sendable, Equatable {
    public var id: String
    public var instruction: String
    public var turns: [String]
    public init(id: String, instruction: String, turns: [String]) { self.id = id; self.instruction = instruction; self.turns = turns }

    /// The user's k-th message (0-based) with the instruction before it.
    public func instructed(_ k: Int) -> String { instruction + " " + turns[k] }

    /// The user's k-th message as a dialogue gives it: the instruction on
    /// the first turn only, or (Ghost Attention's sampling) on every turn.
    public func user(_ k: Int, instructionOnEveryTurn: Bool = false) -> String {
        k == 0 || instructionOnEveryTurn ? instructed(k) : turns[k]
    }
}

/// A labelled comparison of two answers to one dialogue (the preference pool).
public struct Comparison: Codable, Sendable, Equatable {
    public var promptID: String
    public var dialogue: [ChatMessage]
    public var responses: [String]
    /// 0 or 1: which response the annotator chose.
    public var chosen: Int
    public var degree: PreferenceDegree
    /// Whether each response is safe.
    public var safe: [Bool]
    /// The annotation batch and the policy that wrote the responses.
    public var batch: String?
    public var policy: String?

    enum CodingKeys: String, CodingKey {
        case promptID = "prompt_id", dialogue, responses, chosen, degree, safe, batch, policy
    }
}

public enum JSONLines {
    /// Every record of `path`, each checked by `check`; the first bad line
    /// stops the read with its number and the problem. Blank lines are skipped.
    public static func read<T: Decodable>(_ type: T.Type, path: String, check: (T) throws(RecordError) -> Void = { _ in }) throws(RecordError) -> [T] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RecordError(file: path, line: 0, message: "cannot read the file")
        }
        var records: [T] = []
        var lineNumber = 0
        for raw in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            if raw.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let record: T
            do { record = try JSONDecoder().decode(T.self, from: Data(raw)) } catch let e as DecodingError {
                throw RecordError(file: path, line: lineNumber, message: describe(e))
            } catch {
                throw RecordError(file: path, line: lineNumber, message: "\(error)")
            }
            do { try check(record) } catch {
                throw RecordError(file: path, line: lineNumber, message: error.message)
            }
            records.append(record)
        }
        return records
    }

    /// DecodingError in words: which field, and what was expected.
    static func describe(_ e: DecodingError) -> String {
        func path(_ keys: [CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch e {
        case .dataCorrupted(let c) where c.codingPath.isEmpty: return "not a JSON object"
        case .dataCorrupted(let c): return "\(path(c.codingPath)): \(c.debugDescription)"
        case .keyNotFound(let k, let c): return "\(path(c.codingPath + [k])): required field is missing"
        case .typeMismatch(let t, let c): return "\(path(c.codingPath)): expected \(t)"
        case .valueNotFound(let t, let c): return "\(path(c.codingPath)): expected \(t), found null"
        @unknown default: return "\(e)"
        }
    }

    /// The dialogue's turns in order: optional system, then user/assistant alternating.
    public static func checkTurns(_ dialogue: [ChatMessage], endsWithAssistant: Bool) throws(RecordError) {
        let turns = dialogue.first?.role == .system ? Array(dialogue.dropFirst()) : dialogue
        guard !turns.isEmpty else { throw RecordError(file: "", line: 0, message: "dialogue: no user turn") }
        for (i, m) in turns.enumerated() {
            let expected: ChatMessage.Role = i % 2 == 0 ? .user : .assistant
            guard m.role == expected else {
                throw RecordError(file: "", line: 0, message: "dialogue[\(i + dialogue.count - turns.count)]: expected role \(expected.rawValue), found \(m.role.rawValue)")
            }
        }
        if endsWithAssistant && turns.last?.role != .assistant {
            throw RecordError(file: "", line: 0, message: "dialogue: a demonstration ends with the assistant's answer")
        }
    }

    public static func comparisons(path: String) throws(RecordError) -> [Comparison] {
        try read(Comparison.self, path: path) { (c: Comparison) throws(RecordError) in
            try checkTurns(c.dialogue, endsWithAssistant: false)
            if c.dialogue.last?.role != .user {
                throw RecordError(file: "", line: 0, message: "dialogue: a comparison's dialogue ends with the user turn the responses answer")
            }
            guard c.responses.count == 2 else { throw RecordError(file: "", line: 0, message: "responses: expected 2 answers, found \(c.responses.count)") }
            guard c.chosen == 0 || c.chosen == 1 else { throw RecordError(file: "", line: 0, message: "chosen: expected 0 or 1, found \(c.chosen)") }
            guard c.safe.count == 2 else { throw RecordError(file: "", line: 0, message: "safe: expected 2 booleans, found \(c.safe.count)") }
        }
    }

    /// Training and held-out records: the held-out file when there is one,
    /// else the last `fraction` of the training file (at least one record).
    public static func split<T>(path: String, heldOut: String?, fraction: Double,
                                read: (String) throws(RecordError) -> [T]) throws(RecordError) -> (train: [T], heldOut: [T]) {
        var train = try read(path)
        if let h = heldOut { return (train, try read(h)) }
        guard train.count > 1 && fraction > 0 else { return (train, []) }
        let n = max(1, Int(Double(train.count) * fraction))
        let held = Array(train.suffix(n))
        train.removeLast(n)
        return (train, held)
    }

    public static func instructedDialogues(path: String) throws(RecordError) -> [InstructedDialogue] {
        try read(InstructedDialogue.self, path: path) { (d: InstructedDialogue) throws(RecordError) in
            if d.turns.isEmpty { throw RecordError(file: path, line: 0, message: "dialogue \(d.id) has no turns") }
            if d.instruction.trimmingCharacters(in: .whitespaces).isEmpty { throw RecordError(file: path, line: 0, message: "dialogue \(d.id) has an empty instruction") }
        }
    }

    public static func demonstrations(path: String) throws(RecordError) -> [Demonstration] {
        try read(Demonstration.self, path: path) { (d: Demonstration) throws(RecordError) in
            try checkTurns(d.dialogue, endsWithAssistant: true)
        }
    }
}
