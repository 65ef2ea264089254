import XCTest
import Foundation
import Herd

/// The numbers PPO is made of (issue 10's first slice): the paper's reward
/// transform and per-token KL penalty against a hand computation, whitening,
/// generalized advantage estimation, and the clipped surrogate's gradient —
/// per token and through the whole model — against finite differences.
final class PPOMathTests: XCTestCase {
    func testRewardTransformAndKLByHand() {
        // The piecewise switch: a prompt tagged unsafe takes the safety reward;
        // so does an answer whose safety reward is below 0.15; else helpfulness.
        XCTAssertEqual(PPOReward.combined(helpful: 0.9, safety: 0.6, safetyPrompt: true), 0.6)
        XCTAssertEqual(PPOReward.combined(helpful: 0.9, safety: 0.14, safetyPrompt: false), 0.14)
        XCTAssertEqual(PPOReward.combined(helpful: 0.9, safety: 0.15, safetyPrompt: false), 0.9)
        XCTAssertEqual(PPOReward.logit(0.5), 0, accuracy: 1e-12)
        XCTAssertEqual(PPOReward.logit(0.9), log(9.0), accuracy: 1e-12)
        XCTAssertEqual(PPOReward.logit(0.14), log(0.14 / 0.86), accuracy: 1e-12)
        // Whitening of LOGIT over a batch of three: by hand.
        let rc = [0.6, 0.14, 0.9]
        let l = rc.map { log($0 / (1 - $0)) }
        let mean = l.reduce(0, +) / 3
        let sd = (l.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 3).squareRoot()
        for (got, want) in zip(PPOReward.scores(combined: rc), l.map { ($0 - mean) / sd }) { XCTAssertEqual(got, want, accuracy: 1e-6) }
        // Per-token rewards: −β·(log π − log π₀) on every token, the score on the last.
        let r = PPOReward.tokenRewards(score: 1.5, logProbs: [-1.0, -0.5, -2.0], referenceLogProbs: [-1.2, -0.5, -1.0], beta: 0.01)
        XCTAssertEqual(r[0], -0.01 * 0.2, accuracy: 1e-7)
        XCTAssertEqual(r[1], 0, accuracy: 1e-12)
        XCTAssertEqual(r[2], 1.5 - 0.01 * -1.0, accuracy: 1e-7)
    }

    func testWhiteningGivesMeanZeroVarianceOne() {
        var g = SplitMix64(seed: 5)
        let x = (0..<512).map { _ in 3 + 2 * g.nextNormal() }
        let w = PPOReward.whiten(x)
        let mean = w.reduce(0, +) / Double(w.count)
        let variance = w.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(w.count)
        XCTAssertEqual(mean, 0, accuracy: 1e-12)
        XCTAssertEqual(variance, 1, accuracy: 1e-6)
        XCTAssertEqual(PPOReward.whiten([2, 2, 2]), [0, 0, 0])
    }

    func testGeneralizedAdvantagesByHand() {
        let (a, ret) = PPOReward.advantages(rewards: [0.1, 0, 1], values: [0.5, 0.4, 0.3], gamma: 1, lambda: 0.9)
        // δ = [0.1 + 0.4 − 0.5, 0 + 0.3 − 0.4, 1 + 0 − 0.3] = [0, −0.1, 0.7]
        let d = [0.0, -0.1, 0.7]
        let a2 = d[2], a1 = d[1] + 0.9 * a2, a0 = d[0] + 0.9 * a1
        for (got, want) in zip(a, [a0, a1, a2]) { XCTAssertEqual(got, want, accuracy: 1e-12) }
        for (got, want) in zip(ret, [a0 + 0.5, a1 + 0.4, a2 + 0.3]) { XCTAssertEqual(got, want, accuracy: 1e-12) }
    }

    /// The surrogate's gradient in the log-probabilities, in and out of the clip range, both signs of advantage.
    func testClippedSurrogateGradientPerToken() {
        let old: [Float] = [-1, -1, -1, -1, -2, -0.5]
        let lp: [Float] = [-0.95, -1.4, -0.7, -1.05, -2.1, -0.45]   // ratios 1.05, 0.67, 1.35, 0.95, 0.90, 1.05
        let adv: [Float] = [1, 1, 1, -1, -0.5, 2]
        let r = ClippedSurrogate.forwardBackward(logProbs: lp, oldLogProbs: old, advantages: adv, clip: 0.2)
        XCTAssertEqual(r.clipFraction, 2.0 / 6, accuracy: 1e-12)
        XCTAssertEqual(r.gradLogProbs[2], 0, "ratio 1.35 with A > 0: clipped, no gradient")
        XCTAssertNotEqual(r.gradLogProbs[1], 0, "ratio 0.67 with A > 0: the unclipped term is the smaller, gradient flows")
        let h: Float = 1e-3
        for t in 0..<lp.count {
            var up = lp, down = lp
            up[t] += h; down[t] -= h
            let fd = (ClippedSurrogate.forwardBackward(logProbs: up, oldLogProbs: old, advantages: adv).loss
                      - ClippedSurrogate.forwardBackward(logProbs: down, oldLogProbs: old, advantages: adv).loss) / Double(2 * h)
            XCTAssertEqual(Double(r.gradLogProbs[t]), fd, accuracy: 1e-4, "token \(t)")
        }
        let v = ClippedSurrogate.valueLoss(values: [1, 2], returns: [0.5, 3])
        XCTAssertEqual(v.loss, (0.25 + 1) / 4, accuracy: 1e-7)
        XCTAssertEqual(v.gradValues, [0.25, -0.5])
    }

    func tinyPolicy() throws -> Llama {
        var c = LlamaConfig.presets["tiny-gqa"]!
        c.vocabSize = 11
        let m = try Llama(config: c)
        m.initialize(seed: 3, std: 0.2)
        return m
    }

    /// Through the whole model: the clipped objective as a function of
    /// every weight, against finite differences; and with every advantage
    /// zero the gradient is exactly zero.
    func testClippedSurrogateGradientThroughTheModel() throws {
        let model = try tinyPolicy()
        let B = 2, T = 6
        let acts = Activations(config: model.config, batch: B, seqLen: T)
        var g = SplitMix64(seed: 7)
        let tokens = (0..<(B * T)).map { _ in TokenID(g.next() % 11) }
        var targets = (0..<(B * T)).map { _ in TokenID(g.next() % 11) }
        targets[0] = CrossEntropy.ignoreIndex; targets[T] = CrossEntropy.ignoreIndex   // the prompt's tokens carry no loss
        let counted = targets.indices.filter { targets[$0] >= 0 }
        let now = model.tokenLogProbs(tokens: tokens, targets: targets, acts: acts)
        // The sampling policy's log-probabilities: near the current ones, some far enough to clip.
        let old = counted.map { now[$0] + Float(0.25 * g.nextNormal()) }
        let adv = counted.map { _ in Float(g.nextNormal()) }
        func loss() -> (Double, [Float]) {
            let lp = model.tokenLogProbs(tokens: tokens, targets: targets, acts: acts)
            let r = ClippedSurrogate.forwardBackward(logProbs: counted.map { lp[$0] }, oldLogProbs: old, advantages: adv)
            var grad = [Float](repeating: 0, count: B * T)
            for (k, i) in counted.enumerated() { grad[i] = r.gradLogProbs[k] }
            return (r.loss, grad)
        }
        let (l0, gradLogProbs) = loss()
        XCTAssertTrue(l0.isFinite)
        XCTAssertGreaterThan(ClippedSurrogate.forwardBackward(logProbs: counted.map { now[$0] }, oldLogProbs: old, advantages: adv).clipFraction, 0)
        model.zeroGradients()
        model.backwardLogProbs(tokens: tokens, targets: targets, gradLogProbs: gradLogProbs, acts: acts)
        let analytic = model.grads.array
        let check = GradientCheck(h: 3e-3, tolerance: 2e-3)
        for spec in model.layout.specs {
            let idx = Array(spec.offset..<(spec.offset + spec.count))
            check.check(spec.name, analytic: analytic, buffer: model.params.base, indices: idx) { loss().0 }
        }
        // Advantages all zero: no gradient at all, so an Adam step (without weight decay) moves nothing.
        let zero = ClippedSurrogate.forwardBackward(logProbs: counted.map { now[$0] }, oldLogProbs: old,
                                                    advantages: [Float](repeating: 0, count: counted.count))
        XCTAssertTrue(zero.gradLogProbs.allSatisfy { $0 == 0 })
        model.zeroGradients()
        _ = model.tokenLogProbs(tokens: tokens, targets: targets, acts: acts)   // the forward the backward starts from
        var full = [Float](repeating: 0, count: B * T)
        for (k, i) in counted.enumerated() { full[i] = zero.gradLogProbs[k] }
        model.backwardLogProbs(tokens: tokens, targets: targets, gradLogProbs: full, acts: acts)
        XCTAssertTrue(model.grads.array.allSatisfy { $0 == 0 })
    }
}
