import XCTest
import Foundation
import Herd

/// Selection after rejection sampling: before V4 only this iteration's bag;
/// from V4 the best of every bag so far.
final class SelectionTests: XCTestCase {
    func testPoolingFromV4Only() throws {
        let dir = NSTemporaryDirectory() + "herd-select-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try [#"{"id": "a", "dialogue": [{"role": "user", "content": "Capitals: cat"}], "safety": false}"#,
             #"{"id": "b", "dialogue": [{"role": "user", "content": "Say twice: dog"}], "safety": false}"#]
            .joined(separator: "\n").write(toFile: dir + "/prompts.jsonl", atomically: true, encoding: .utf8)
        func bag(_ name: String, _ samples: [(String, String, Double)]) throws -> String {
            let enc = JSONEncoder()
            let lines = try samples.enumerated().map { k, s in
                String(decoding: try enc.encode(SampleRecord(promptID: s.0, iteration: name, policy: "p", k: k, text: s.1,
                                                             rewardHelpful: s.2, rewardSafety: 0.9, reward: s.2)), as: UTF8.self)
            }
            try lines.joined(separator: "\n").write(toFile: dir + "/\(name).jsonl", atomically: true, encoding: .utf8)
            return dir + "/\(name).jsonl"
        }
        // An earlier bag holds the better answer to "a"; the current one the better answer to "b".
        let earlier = try bag("V2", [("a", "CAT", 0.9), ("b", "dog", 0.2)])
        for n in [3, 4] {
            let current = try bag("V\(n)", [("a", "cat", 0.4), ("a", "CA", 0.3), ("b", "dog dog", 0.8)])
            var s = Selection(prompts: dir + "/prompts.jsonl", bag: current, iteration: n)
            s.earlierBags = [earlier]
            let best = try s.best()
            XCTAssertEqual(best["b"]?.text, "dog dog")
            XCTAssertEqual(best["a"]?.text, n >= 4 ? "CAT" : "cat", "V\(n): \(n >= 4 ? "pooled" : "this bag only")")
            let out = dir + "/sel-\(n).jsonl"
            XCTAssertEqual(try s.write(to: out), 2)
            let demos = try JSONLines.demonstrations(path: out)
            XCTAssertEqual(demos.map { $0.dialogue.last!.content }, [n >= 4 ? "CAT" : "cat", "dog dog"])
            XCTAssertEqual(demos[0].id, n >= 4 ? "V2/a" : "V\(n)/a")
        }
        XCTAssertEqual(Selection.number("V5"), 5)
        XCTAssertNil(Selection.number("five"))
    }

    /// The control arm: the world's annotator rates every sample (once: the
    /// ratings are kept beside the bag) and its ratings choose, whatever the
    /// reward models said.
    func testTheAnnotatorArmChoosesByRatings() throws {
        try HerdBinary.requireBinary()
        let dir = NSTemporaryDirectory() + "herd-select-ann-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try [#"{"id": "a", "dialogue": [{"role": "user", "content": "Capitals: cat"}], "safety": false}"#,
             #"{"id": "h", "dialogue": [{"role": "user", "content": "How do I make poison?"}], "safety": true}"#]
            .joined(separator: "\n").write(toFile: dir + "/prompts.jsonl", atomically: true, encoding: .utf8)
        // The reward models prefer the wrong answers.
        let samples = [("a", "CAT", 0.2), ("a", "cat", 0.9), ("h", "Here is how.", 0.8), ("h", SyntheticWorld.refusal, 0.1)]
        let enc = JSONEncoder()
        try samples.enumerated().map { k, s in
            String(decoding: try enc.encode(SampleRecord(promptID: s.0, iteration: "V1", policy: "p", k: k, text: s.1,
                                                         rewardHelpful: s.2, rewardSafety: s.2, reward: s.2)), as: UTF8.self)
        }.joined(separator: "\n").write(toFile: dir + "/bag.jsonl", atomically: true, encoding: .utf8)
        var s = Selection(prompts: dir + "/prompts.jsonl", bag: dir + "/bag.jsonl", iteration: 1)
        XCTAssertEqual(try s.best()["a"]?.text, "cat", "by the reward models")
        let annotator = [HerdBinary.path, "rlhf", "annotator", "--noise", "0"]
        s.ratings = try SampleRatings.rate(bags: s.bags, prompts: dir + "/prompts.jsonl", annotator: annotator)
        XCTAssertEqual(s.ratings?.count, 4)
        XCTAssertEqual(try s.best()["a"]?.text, "CAT", "by the annotator's ratings")
        XCTAssertEqual(try s.best()["h"]?.text, SyntheticWorld.refusal)
        // Kept: a second selection asks the annotator nothing (a command that cannot start would fail).
        XCTAssertEqual(try SampleRatings.rate(bags: s.bags, prompts: dir + "/prompts.jsonl", annotator: ["/nonexistent"]).count, 4)
    }
}
