import XCTest
import Foundation
import Herd

/// The reward models' pieces: the margin ranking loss against a hand
/// computation for each degree and margin table, the scalar head against
/// finite differences, and the comparison reader's errors.
final class RewardLossTests: XCTestCase {
    func testMarginTablesAreThePapers() {
        XCTAssertEqual(PreferenceDegree.allCases.map { MarginTable.small.margin($0) }, [1, 2.0 / 3.0, 1.0 / 3.0, 0])
        XCTAssertEqual(PreferenceDegree.allCases.map { MarginTable.large.margin($0) }, [3, 2, 1, 0])
        XCTAssertEqual(PreferenceDegree.allCases.map { MarginTable.none.margin($0) }, [0, 0, 0, 0])
    }

    func testRankingLossAndGradientByHand() {
        let (rc, rr) = (0.8, -0.4)
        for table in MarginTable.allCases {
            for degree in PreferenceDegree.allCases {
                let m = table.margin(degree)
                // By hand: x = r_c − r_r − m; L = −log(1 / (1 + e^(−x))); dL/dr_c = −e^(−x) / (1 + e^(−x)).
                let x = rc - rr - m
                let loss = -log(1 / (1 + exp(-x)))
                let d = exp(-x) / (1 + exp(-x))
                XCTAssertEqual(RankingLoss.forward(chosen: rc, rejected: rr, margin: m), loss, accuracy: 1e-12, "\(table) \(degree)")
                let g = RankingLoss.backward(chosen: rc, rejected: rr, margin: m)
                XCTAssertEqual(g.dChosen, -d, accuracy: 1e-12)
                XCTAssertEqual(g.dRejected, d, accuracy: 1e-12)
            }
        }
        // A larger margin costs more for the same rewards; huge differences stay finite.
        XCTAssertGreaterThan(RankingLoss.forward(chosen: 1, rejected: 0, margin: 3), RankingLoss.forward(chosen: 1, rejected: 0, margin: 1))
        XCTAssertEqual(RankingLoss.forward(chosen: 800, rejected: 0, margin: 0), 0, accuracy: 1e-300)
        XCTAssertEqual(RankingLoss.forward(chosen: -800, rejected: 0, margin: 0), 800, accuracy: 1e-9)
    }

    func testScalarHeadGradientAgainstFiniteDifferences() {
        let dim = 16
        var g = SplitMix64(seed: 2)
        let h = (0..<dim).map { _ in Float(g.nextNormal()) }, w = (0..<dim).map { _ in Float(g.nextNormal()) * 0.3 }
        // A loss of the reward: the ranking loss against a fixed rejected reward.
        func loss(_ h: [Float], _ w: [Float]) -> Double {
            RankingLoss.forward(chosen: Double(ScalarHead.forward(hidden: h, weight: w, dim: dim)), rejected: 0.2, margin: 2.0 / 3.0)
        }
        let r = Double(ScalarHead.forward(hidden: h, weight: w, dim: dim))
        let dr = Float(RankingLoss.backward(chosen: r, rejected: 0.2, margin: 2.0 / 3.0).dChosen)
        var dh = [Float](repeating: 0, count: dim), dw = [Float](repeating: 0, count: dim)
        ScalarHead.backward(dReward: dr, hidden: h, weight: w, dHidden: &dh, dWeight: &dw, dim: dim)
        let eps: Float = 1e-2
        for i in 0..<dim {
            var hp = h, hm = h, wp = w, wm = w
            hp[i] += eps; hm[i] -= eps; wp[i] += eps; wm[i] -= eps
            let nh = (loss(hp, w) - loss(hm, w)) / Double(2 * eps), nw = (loss(h, wp) - loss(h, wm)) / Double(2 * eps)
            XCTAssertEqual(Double(dh[i]), nh, accuracy: 1e-3 * max(1, abs(nh)))
            XCTAssertEqual(Double(dw[i]), nw, accuracy: 1e-3 * max(1, abs(nw)))
        }
    }

    func testBadComparisonLinesAreNamed() throws {
        let path = NSTemporaryDirectory() + "herd-comparisons-\(getpid()).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let good = #"{"prompt_id": "p1", "dialogue": [{"role": "user", "content": "hi"}], "responses": ["a", "b"], "chosen": 1, "degree": "better", "safe": [true, true], "batch": "b1"}"#
        try [good, good].joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let read = try JSONLines.comparisons(path: path)
        XCTAssertEqual(read.map(\.degree), [.better, .better])
        XCTAssertEqual(read[0].promptID, "p1")
        for (line, text) in [(good.replacingOccurrences(of: "\"better\"", with: "\"much_better\""), "degree"),
                             (good.replacingOccurrences(of: "\"chosen\": 1", with: "\"chosen\": 2"), "chosen: expected 0 or 1"),
                             (good.replacingOccurrences(of: #"["a", "b"]"#, with: #"["a"]"#), "responses: expected 2 answers")] {
            try [good, line].joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try JSONLines.comparisons(path: path)) {
                XCTAssertTrue("\($0)".contains(":2: ") && "\($0)".contains(text), "\($0)")
            }
        }
    }
}
