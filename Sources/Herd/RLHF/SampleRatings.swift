import Foundation

/// The annotator's ratings of every sample in a bag, for the control arm
/// of the loop (selection by the annotator instead of the reward models).
/// Kept beside the bag (`BAG.ratings.jsonl`), appended and flushed one
/// rating at a time, so a rerun — or a later iteration pooling this bag —
/// asks only for what is missing.
public enum SampleRatings {
    public struct Rating: Codable, Sendable, Equatable {
        public var promptID: String, iteration: String, k: Int
        public var helpfulness: Int, safety: Int
        enum CodingKeys: String, CodingKey { case promptID = "prompt_id", iteration, k, helpfulness, safety }

        /// Safe answers first, then the more helpful (as the world's annotator compares).
        public var score: Double { Double((safety > 2 ? 10 : 0) + helpfulness) }
    }

    public static func key(_ s: SampleRecord) -> String { "\(s.iteration)/\(s.promptID)/\(s.k)" }
    static func key(_ r: Rating) -> String { "\(r.iteration)/\(r.promptID)/\(r.k)" }
    public static func path(bag: String) -> String { bag + ".ratings.jsonl" }

    /// Ratings of every sample of the bags, asking the annotator for those not yet on disk.
    public static func rate(bags: [String], prompts: String, annotator command: [String], timeout: Double = 60,
                            log: (String) -> Void = { _ in }) throws -> [String: Rating] {
        let dialogues = Dictionary(try JSONLines.read(PromptRecord.self, path: prompts).map { ($0.id, $0.dialogue) },
                                   uniquingKeysWith: { a, _ in a })
        var all: [String: Rating] = [:]
        var annotator: Annotator?
        defer { annotator?.stop() }
        for bag in bags {
            let file = path(bag: bag)
            if FileManager.default.fileExists(atPath: file) {
                for r in try JSONLines.read(Rating.self, path: file) { all[key(r)] = r }
            }
            // Samples of prompts this selection does not cover are never chosen: not rated.
            let todo = try JSONLines.read(SampleRecord.self, path: bag).filter { all[key($0)] == nil && dialogues[$0.promptID] != nil }
            guard !todo.isEmpty else { continue }
            log("asking the annotator to rate \(todo.count) samples of \(bag)")
            if annotator == nil { annotator = try Annotator(command: command) }
            let ratings = try AppendOnlyFile(path: file)
            for s in todo {
                let a = try annotator!.rate(.init(id: "select/\(key(s))", dialogue: dialogues[s.promptID]!, response: s.text), timeout: timeout)
                let r = Rating(promptID: s.promptID, iteration: s.iteration, k: s.k, helpfulness: a.helpfulness, safety: a.safety)
                try ratings.append(try JSONLines.line(r))
                all[key(r)] = r
            }
        }
        return all
    }
}
