import Foundation

/// Ghost Attention (the Llama 2 paper, section 3.3): teach a policy to keep
/// an instruction given once for the whole dialogue.
///
/// Data: every assistant turn of a multi-turn dialogue is sampled from the
/// latest policy with the instruction attached to every user turn (where
/// the model does follow it); the instruction is then kept on the first
/// user turn only, and each dialogue prefix ending at turn k becomes a
/// demonstration whose loss is on its last answer only — every earlier
/// token, the earlier answers included, has loss zero (`loss: last_answer`).
/// Turn 1 is among them: without it the fine-tuning data hold the
/// instruction only with earlier turns before the learned answer, and the
/// world's model kept it less on the turn that gives it (0.56 against 0.88).
/// The demonstrations join the iteration's fine-tuning data.
public struct GhostAttention {
    public var policy: String
    public var dialogues: String
    public var out: String
    /// The iteration's other fine-tuning data, copied ahead of GAtt's.
    public var selections: String?
    public var temperature = 0.0
    public var maxNewTokens = 48
    public var seed: UInt64 = 1
    /// When set, the annotator rates each sampled answer in the dialogue as
    /// it will be trained (the instruction on turn 1 only) and only the
    /// turns it says keep the instruction are kept: the policy's samples
    /// keep it less as the dialogue goes on.
    public var annotator: [String]?
    /// Generating on a tensor group: the leader of its other ranks.
    public var leader: TensorGroupLeader?
    public var timeout = 60.0

    public init(policy: String, dialogues: String, out: String) { self.policy = policy; self.dialogues = dialogues; self.out = out }

    /// The demonstrations of one dialogue whose answers were sampled under
    /// the instruction: every turn, with the instruction on turn 1 only.
    public static func demonstrations(_ d: InstructedDialogue, answers: [String]) -> [Demonstration] {
        precondition(answers.count == d.turns.count)
        var turns: [ChatMessage] = []
        var out: [Demonstration] = []
        for (k, answer) in answers.enumerated() {
            turns += [ChatMessage(.user, d.user(k)), ChatMessage(.assistant, answer)]
            out.append(Demonstration(id: "\(d.id)-turn\(k + 1)", dialogue: turns, loss: .lastAnswer))
        }
        return out
    }

    /// Samples, writes `out` (the selections first, then GAtt's) atomically,
    /// and returns how many demonstrations GAtt added.
    @discardableResult
    public func run(log: (String) -> Void = { _ in }) throws -> Int {
        let all = try JSONLines.instructedDialogues(path: dialogues)
        let sampler = try ChatSampler.load(policy, role: "policy", leader: leader)
        let answers = try sampler.turns(all, instructionOnEveryTurn: true, temperature: temperature, maxNewTokens: maxNewTokens, seed: seed)
        var gatt = zip(all, answers).flatMap { Self.demonstrations($0, answers: $1) }
        let sampled = gatt.count
        if let command = annotator {
            let judge = try Annotator(command: command)
            defer { judge.stop() }
            gatt = try gatt.filter { d in
                try InstructionFollowing.kept(judge, id: "gatt/\(d.id)", dialogue: Array(d.dialogue.dropLast()), answer: d.dialogue.last!.content, timeout: timeout)
            }
        }
        let before = try selections.map { try JSONLines.demonstrations(path: $0) } ?? []
        try JSONLines.write(before + gatt, to: out)
        log("the turns: " + sampler.meter.summary)
        log("\(all.count) dialogues sampled with the instruction on every turn; \(gatt.count) demonstrations (loss on the last answer)"
            + (annotator == nil ? "" : ", of \(sampled), that the annotator says keep the instruction")
            + " after \(before.count) from \(selections ?? "nothing") in \(out)")
        return gatt.count
    }
}

extension ChatSampler {
    /// Each dialogue answered turn by turn, every answer in the context of
    /// the earlier ones: the instruction before every user turn, or before
    /// the first only (how a user gives it, and how GAtt's effect is
    /// measured). Turn k of dialogue i draws from stream (seed, k, i).
    public func turns(_ dialogues: [InstructedDialogue], instructionOnEveryTurn: Bool, temperature: Double, maxNewTokens: Int,
                      seed: UInt64) throws -> [[String]] {
        var history = dialogues.map { _ in [ChatMessage]() }
        var answers = dialogues.map { _ in [String]() }
        for k in 0..<(dialogues.map(\.turns.count).max() ?? 0) {
            let open = dialogues.indices.filter { k < dialogues[$0].turns.count }
            for i in open {
                let d = dialogues[i]
                history[i].append(ChatMessage(.user, d.user(k, instructionOnEveryTurn: instructionOnEveryTurn)))
            }
            let said = try self.answers(open.map { history[$0] }, temperature: temperature, maxNewTokens: maxNewTokens,
                                        seed: SplitMix64.mix(seed, UInt64(k)))
            for (i, a) in zip(open, said) {
                history[i].append(ChatMessage(.assistant, a))
                answers[i].append(a)
            }
        }
        return answers
    }
}

/// Ghost Attention's measure: held-out dialogues under an instruction given
/// on the first turn only, answered greedily turn by turn; the annotator
/// says of each answer whether it keeps the instruction; the share per turn.
public enum InstructionFollowing {
    /// Per dialogue (by id), whether each greedy turn kept the instruction.
    public static func keptByDialogue(_ sampler: ChatSampler, dialogues: [InstructedDialogue], annotator: Annotator, maxNewTokens: Int,
                                      timeout: Double, tag: String) throws -> [String: [Bool]] {
        let answers = try sampler.turns(dialogues, instructionOnEveryTurn: false, temperature: 0, maxNewTokens: maxNewTokens, seed: 0)
        var out: [String: [Bool]] = [:]
        for (d, said) in zip(dialogues, answers) {
            var history: [ChatMessage] = [], kept: [Bool] = []
            for (k, a) in said.enumerated() {
                history.append(ChatMessage(.user, d.user(k)))
                kept.append(try Self.kept(annotator, id: "\(tag)/\(d.id)/turn\(k + 1)", dialogue: history, answer: a, timeout: timeout))
                history.append(ChatMessage(.assistant, a))
            }
            out[d.id] = kept
        }
        return out
    }

    /// Per turn, the share of the dialogues reaching it that kept the instruction there.
    public static func shares(_ kept: [String: [Bool]]) -> [Double] {
        let turns = kept.values.map(\.count).max() ?? 0
        return (0..<turns).map { k in
            let reached = kept.values.filter { $0.count > k }
            return Double(reached.filter { $0[k] }.count) / Double(reached.count)
        }
    }

    /// The annotator's word on whether `answer` keeps the dialogue's standing instruction.
    static func kept(_ annotator: Annotator, id: String, dialogue: [ChatMessage], answer: String, timeout: Double) throws -> Bool {
        let r = try annotator.rate(.init(id: id, dialogue: dialogue, response: answer), timeout: timeout)
        guard let kept = r.instruction else {
            throw AnnotatorError.badAnswer(request: id, line: "", reason: "no \"instruction\" field: the annotator must say whether the answer keeps the standing instruction")
        }
        return kept
    }
}
