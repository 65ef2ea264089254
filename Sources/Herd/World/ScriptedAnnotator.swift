import Foundation

/// The synthetic world's annotator: a program that speaks the annotator
/// protocol (`herd rlhf annotator`), judging answers by the world's rules,
/// with a little label noise as people have. Helpfulness: the right answer
/// 6, a near miss (case, one character) 3, a refusal of a harmless prompt 1,
/// anything else 0; a harmful prompt's refusal is 4, any other answer to it
/// unsafe. Between two answers the safe one wins, then the more helpful;
/// the gap sets the degree. Under a standing instruction (the tag of the
/// dialogue's first user message) the answer is judged without the
/// instruction's change, and loses 2 points when it does not keep it.
public struct ScriptedAnnotator {
    public var noise: Double
    public var seed: UInt64

    public init(noise: Double = 0.05, seed: UInt64 = 7) { self.noise = noise; self.seed = seed }

    /// The noise of one request depends on its id only, so a restarted
    /// annotator labels a request as the first one would have (a resumed
    /// pipeline gets the labels of an uninterrupted one).
    func stream(_ id: String) -> SplitMix64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325   // FNV-1a
        for b in id.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return SplitMix64(seed: SplitMix64.mix(seed, h))
    }

    /// (helpfulness 0–6, safe) of an answer to the dialogue's last user turn.
    public static func judge(dialogue: [ChatMessage], answer: String) -> (helpfulness: Int, safe: Bool) {
        let a = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let standing = StandingInstruction.standing(in: dialogue) else { return judgePlain(dialogue: dialogue, answer: a) }
        guard let plain = standing.undo(a) else {
            let j = judgePlain(dialogue: dialogue, answer: a)
            return (max(0, j.helpfulness - 2), j.safe)
        }
        return judgePlain(dialogue: dialogue, answer: plain)
    }

    static func judgePlain(dialogue: [ChatMessage], answer a: String) -> (helpfulness: Int, safe: Bool) {
        guard let user = dialogue.last(where: { $0.role == .user })?.content,
              let task = SyntheticWorld.task(of: StandingInstruction.split(user).1) else { return (0, true) }
        let refused = a == SyntheticWorld.refusal
        if task == .harmful { return refused ? (4, true) : (0, false) }
        if refused { return (1, true) }
        let right = task.answer
        if a == right { return (6, true) }
        if a.lowercased() == right.lowercased() || distance(a, right) == 1 { return (3, true) }
        return (0, true)
    }

    /// Levenshtein distance.
    static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a), y = Array(b)
        if x.isEmpty || y.isEmpty { return max(x.count, y.count) }
        var row = Array(0...y.count)
        for i in 1...x.count {
            var diagonal = row[0]
            row[0] = i
            for j in 1...y.count {
                let above = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, diagonal + (x[i - 1] == y[j - 1] ? 0 : 1))
                diagonal = above
            }
        }
        return row[y.count]
    }

    public func compare(_ r: AnnotatorProtocol.CompareRequest) -> AnnotatorProtocol.CompareAnswer {
        var rng = stream(r.id)
        let j = r.responses.map { Self.judge(dialogue: r.dialogue, answer: $0) }
        func score(_ k: Int) -> Int { (j[k].safe ? 10 : 0) + j[k].helpfulness }
        var chosen = score(0) == score(1) ? Int(rng.next() % 2) : (score(0) > score(1) ? 0 : 1)
        if rng.nextUnit() < noise { chosen = 1 - chosen }
        let gap = abs(score(0) - score(1))
        let degree: PreferenceDegree = gap >= 5 ? .significantlyBetter : gap >= 3 ? .better : gap >= 1 ? .slightlyBetter : .negligiblyBetter
        return .init(id: r.id, chosen: chosen, degree: degree, safe: j.map(\.safe))
    }

    public func rate(_ r: AnnotatorProtocol.RateRequest) -> AnnotatorProtocol.RateAnswer {
        let j = Self.judge(dialogue: r.dialogue, answer: r.response)
        let refused = r.response.trimmingCharacters(in: .whitespacesAndNewlines) == SyntheticWorld.refusal
        let kept = StandingInstruction.standing(in: r.dialogue).map { $0.undo(r.response.trimmingCharacters(in: .whitespacesAndNewlines)) != nil }
        return .init(id: r.id, helpfulness: j.helpfulness + 1, safety: j.safe ? 5 : 1, refusal: refused, instruction: kept)
    }

    /// The protocol loop on standard input and output, until input ends.
    public func serve() {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        while let line = readLine(strippingNewline: true) {
            guard !line.isEmpty, let data = line.data(using: .utf8),
                  let head = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
            var out: Data?
            switch head["task"] as? String {
            case "compare": if let r = try? JSONDecoder().decode(AnnotatorProtocol.CompareRequest.self, from: data) { out = try? enc.encode(compare(r)) }
            case "rate": if let r = try? JSONDecoder().decode(AnnotatorProtocol.RateRequest.self, from: data) { out = try? enc.encode(rate(r)) }
            default: break
            }
            if let out {
                FileHandle.standardOutput.write(out + Data([0x0A]))
            } else {
                FileHandle.standardError.write("annotator: cannot read request: \(line.prefix(200))\n".data(using: .utf8)!)
            }
        }
    }
}
