import XCTest
import Foundation
import Herd

final class OptimizerTests: XCTestCase {
    func testAdamWMatchesTheFormulaInDouble() throws {
        var c = LlamaConfig.presets["tiny-gqa"]!
        c.vocabSize = 5
        let layout = ParameterLayout(config: c)
        var cfg = AdamWConfig()
        cfg.weightDecay = 0.1
        let opt = AdamW(config: cfg, layout: layout)
        let p = FloatBuffer(count: layout.total), g = FloatBuffer(count: layout.total)
        var r = SplitMix64(seed: 1)
        for i in 0..<p.count { p[i] = Float(r.nextNormal()) }
        var ref = p.array.map(Double.init), m = [Double](repeating: 0, count: p.count), v = m
        let normIndex = layout.spec(named: "norm.weight")!.offset
        for step in 1...3 {
            for i in 0..<g.count { g[i] = Float(r.nextNormal()) }
            let lr = 1e-2 * Double(step)
            opt.update(params: p, grads: g, lr: lr)
            for i in 0..<p.count {
                let gi = Double(g[i])
                m[i] = 0.9 * m[i] + 0.1 * gi
                v[i] = 0.95 * v[i] + 0.05 * gi * gi
                let mh = m[i] / (1 - pow(0.9, Double(step))), vh = v[i] / (1 - pow(0.95, Double(step)))
                let decays = !(normIndex..<(normIndex + c.dim)).contains(i) && layout.specs.first { ($0.offset..<($0.offset + $0.count)).contains(i) }!.decays
                ref[i] = ref[i] * (decays ? 1 - lr * 0.1 : 1) - lr * mh / (vh.squareRoot() + 1e-5)
            }
        }
        for i in 0..<p.count { XCTAssertEqual(Double(p[i]), ref[i], accuracy: 1e-5) }
    }

    func testCosineScheduleWithWarmupAndFloor() {
        let s = CosineSchedule(peak: 3e-4, warmupSteps: 2000, decaySteps: 500_000, minRatio: 0.1)
        XCTAssertEqual(s.rate(at: 0), 3e-4 / 2000, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 1999), 3e-4, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 2000 + 249_000), 3e-4 * 0.55, accuracy: 1e-9) // half way: (1 + 0.1) / 2
        XCTAssertEqual(s.rate(at: 500_000), 3e-5, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 900_000), 3e-5, accuracy: 1e-12)
    }

    func testGradClipUsesTheGlobalNorm() {
        let g = FloatBuffer([3, 4])
        let norm = GradClip.clip(g, maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-9)
        XCTAssertEqual(Double(g[0]), 0.6, accuracy: 1e-5)
        XCTAssertEqual(Double(g[1]), 0.8, accuracy: 1e-5)
        let small = FloatBuffer([0.3, 0.4])
        GradClip.clip(small, maxNorm: 1)
        XCTAssertEqual(small[0], 0.3)
    }

    func testDefaultsAreThePapers() {
        let a = AdamWConfig()
        XCTAssertEqual(a.beta1, 0.9); XCTAssertEqual(a.beta2, 0.95)
        XCTAssertEqual(a.eps, 1e-5); XCTAssertEqual(a.weightDecay, 0.1)
    }
}
