import XCTest
import Herd

/// Every kernel's backward against central finite differences of its forward.
final class KernelGradientTests: XCTestCase {
    let check = GradientCheck()

    func testLinear() {
        var r = TestRandom(1)
        let rows = 3, inF = 5, outF = 4
        let x = r.buffer(rows * inF), w = r.buffer(outF * inF), dy = r.buffer(rows * outF)
        let y = FloatBuffer(count: rows * outF)
        func f() -> Double {
            Matmul.linearForward(y: y.base, x: x.base, w: w.base, rows: rows, inFeatures: inF, outFeatures: outF)
            return weightedSum(y.base, dy)
        }
        let dx = FloatBuffer(count: rows * inF), dw = FloatBuffer(count: outF * inF)
        Matmul.linearBackward(dx: dx.base, dw: dw.base, dy: dy.base, x: x.base, w: w.base,
                              rows: rows, inFeatures: inF, outFeatures: outF)
        check.check("linear dx", analytic: dx.array, buffer: x.base, objective: f)
        check.check("linear dW", analytic: dw.array, buffer: w.base, objective: f)
    }

    func testEmbedding() {
        var r = TestRandom(2)
        let vocab = 6, dim = 4
        let tokens: [TokenID] = [1, 3, 1, 5]
        let table = r.buffer(vocab * dim), dy = r.buffer(tokens.count * dim)
        let out = FloatBuffer(count: tokens.count * dim)
        func f() -> Double {
            Embedding.forward(out: out.base, tokens: tokens, table: table.base, count: tokens.count, dim: dim)
            return weightedSum(out.base, dy)
        }
        let dTable = FloatBuffer(count: vocab * dim)
        Embedding.backward(dTable: dTable.base, dOut: dy.base, tokens: tokens, count: tokens.count, dim: dim)
        check.check("embedding", analytic: dTable.array, buffer: table.base, objective: f)
        XCTAssertEqual(dTable[0], 0, "a token not in the batch gets no gradient")
    }

    func testRMSNorm() {
        var r = TestRandom(3)
        let rows = 3, dim = 8
        let x = r.buffer(rows * dim), g = r.buffer(dim), dy = r.buffer(rows * dim)
        for i in 0..<dim { g[i] += 1 }
        let y = FloatBuffer(count: rows * dim), rstd = FloatBuffer(count: rows)
        func f() -> Double {
            RMSNorm.forward(y: y.base, rstd: rstd.base, x: x.base, gain: g.base, rows: rows, dim: dim, eps: 1e-5)
            return weightedSum(y.base, dy)
        }
        _ = f()
        let dx = FloatBuffer(count: rows * dim), dg = FloatBuffer(count: dim)
        RMSNorm.backward(dx: dx.base, dGain: dg.base, dy: dy.base, x: x.base, gain: g.base,
                         rstd: rstd.base, rows: rows, dim: dim)
        check.check("rmsnorm dx", analytic: dx.array, buffer: x.base, objective: f)
        check.check("rmsnorm dgain", analytic: dg.array, buffer: g.base, objective: f)
    }

    func testRMSNormValue() {
        // y = x / sqrt(mean(x²) + eps) · g, for x = (3, 4): mean 12.5.
        let x = FloatBuffer([3, 4]), g = FloatBuffer([1, 2]), y = FloatBuffer(count: 2), rstd = FloatBuffer(count: 1)
        RMSNorm.forward(y: y.base, rstd: rstd.base, x: x.base, gain: g.base, rows: 1, dim: 2, eps: 1e-5)
        let s = 1 / (12.5 + 1e-5).squareRoot()
        XCTAssertEqual(Double(y[0]), 3 * s, accuracy: 1e-6)
        XCTAssertEqual(Double(y[1]), 8 * s, accuracy: 1e-6)
    }

    func testRotary() {
        var r = TestRandom(4)
        let seq = 4, heads = 2, hd = 4, ld = heads * hd + 3  // a wider row, as in the fused QKV buffer
        let table = RotaryTable(headDim: hd, maxSeq: seq)
        let x = r.buffer(seq * ld), dy = r.buffer(seq * ld)
        let y = FloatBuffer(count: seq * ld)
        func f() -> Double {
            y.copy(from: x)
            Rotary.apply(y.base, table: table, rows: seq, seqLen: seq, heads: heads, ld: ld)
            return weightedSum(y.base, dy)
        }
        let dx = FloatBuffer(count: seq * ld)
        dx.copy(from: dy)
        Rotary.apply(dx.base, table: table, rows: seq, seqLen: seq, heads: heads, ld: ld, inverse: true)
        check.check("rotary", analytic: dx.array, buffer: x.base, objective: f)
    }

    func testRotaryUsesMetaPairs() {
        // Meta's convention rotates adjacent pairs (x0, x1) by pos·θ^0 = pos
        // radians and (x2, x3) by pos·θ^(−2/4) = pos/100 for θ = 10⁴, d = 4.
        let table = RotaryTable(headDim: 4, maxSeq: 3)
        let x = FloatBuffer([1, 0, 1, 0, /* pos 1 */ 1, 0, 1, 0, /* pos 2 */ 1, 0, 1, 0])
        Rotary.apply(x.base, table: table, rows: 3, seqLen: 3, heads: 1, ld: 4)
        XCTAssertEqual(x[8], Float(cos(2.0)), accuracy: 1e-6)
        XCTAssertEqual(x[9], Float(sin(2.0)), accuracy: 1e-6)
        XCTAssertEqual(x[10], Float(cos(0.02)), accuracy: 1e-6)
        XCTAssertEqual(x[11], Float(sin(0.02)), accuracy: 1e-6)
        XCTAssertEqual(x[0], 1); XCTAssertEqual(x[1], 0)
    }

    func testAttentionWithGroupedQueryHeads() {
        var r = TestRandom(5)
        let s = AttentionShape(batch: 2, seqLen: 5, heads: 4, kvHeads: 2, headDim: 4)
        let rows = s.batch * s.seqLen
        let qkv = r.buffer(rows * s.qkvWidth), dy = r.buffer(rows * s.outWidth)
        let out = FloatBuffer(count: rows * s.outWidth), probs = FloatBuffer(count: s.probsCount)
        func f() -> Double {
            Attention.forward(out: out.base, probs: probs.base, qkv: qkv.base, shape: s)
            return weightedSum(out.base, dy)
        }
        _ = f()
        let dqkv = FloatBuffer(count: rows * s.qkvWidth), scratch = FloatBuffer(count: s.seqLen * s.seqLen)
        Attention.backward(dqkv: dqkv.base, dOut: dy.base, qkv: qkv.base, probs: probs.base,
                           scratch: scratch.base, shape: s)
        check.check("attention dqkv", analytic: dqkv.array, buffer: qkv.base, objective: f)
    }

    func testGroupedQueryEqualsReplicatedKVHeads() {
        // 4 query heads reading 2 KV heads = 4 heads reading each KV head twice.
        var r = TestRandom(6)
        let g = AttentionShape(batch: 1, seqLen: 6, heads: 4, kvHeads: 2, headDim: 2)
        let m = AttentionShape(batch: 1, seqLen: 6, heads: 4, kvHeads: 4, headDim: 2)
        let qkvG = r.buffer(6 * g.qkvWidth)
        let qkvM = FloatBuffer(count: 6 * m.qkvWidth)
        for t in 0..<6 {
            let src = qkvG.base + t * g.qkvWidth, dst = qkvM.base + t * m.qkvWidth
            dst.update(from: src, count: 8)                           // Q
            for h in 0..<4 {
                (dst + 8 + h * 2).update(from: src + 8 + (h / 2) * 2, count: 2)   // K
                (dst + 16 + h * 2).update(from: src + 12 + (h / 2) * 2, count: 2) // V
            }
        }
        let outG = FloatBuffer(count: 6 * 8), outM = FloatBuffer(count: 6 * 8)
        // The probabilities' buffers are held in locals: a temporary's `.base`
        // would be freed before the call reads it.
        let probsG = FloatBuffer(count: g.probsCount), probsM = FloatBuffer(count: m.probsCount)
        Attention.forward(out: outG.base, probs: probsG.base, qkv: qkvG.base, shape: g)
        Attention.forward(out: outM.base, probs: probsM.base, qkv: qkvM.base, shape: m)
        for i in 0..<outG.count { XCTAssertEqual(outG[i], outM[i], accuracy: 1e-6) }
    }

    func testAttentionIsCausal() {
        // Changing the last token must not change any earlier output.
        var r = TestRandom(7)
        let s = AttentionShape(batch: 1, seqLen: 5, heads: 2, kvHeads: 1, headDim: 4)
        let qkv = r.buffer(5 * s.qkvWidth)
        let a = FloatBuffer(count: 5 * s.outWidth), b = FloatBuffer(count: 5 * s.outWidth)
        let probs = FloatBuffer(count: s.probsCount)
        Attention.forward(out: a.base, probs: probs.base, qkv: qkv.base, shape: s)
        for j in 0..<s.qkvWidth { qkv[4 * s.qkvWidth + j] += 1 }
        Attention.forward(out: b.base, probs: probs.base, qkv: qkv.base, shape: s)
        for i in 0..<(4 * s.outWidth) { XCTAssertEqual(a[i], b[i]) }
        XCTAssertNotEqual(a[4 * s.outWidth], b[4 * s.outWidth])
    }

    func testSwiGLU() {
        var r = TestRandom(8)
        let rows = 3, F = 11
        let h = r.buffer(rows * 2 * F, scale: 2), dy = r.buffer(rows * F)
        let g = FloatBuffer(count: rows * F)
        func f() -> Double {
            SwiGLU.forward(g: g.base, h: h.base, rows: rows, hidden: F)
            return weightedSum(g.base, dy)
        }
        let dh = FloatBuffer(count: rows * 2 * F)
        SwiGLU.backward(dh: dh.base, dg: dy.base, h: h.base, rows: rows, hidden: F)
        check.check("swiglu", analytic: dh.array, buffer: h.base, objective: f)
    }

    func testCrossEntropyWithIgnoreMask() {
        var r = TestRandom(9)
        let rows = 4, vocab = 7
        let targets: [TokenID] = [2, CrossEntropy.ignoreIndex, 6, 0]
        let logits = r.buffer(rows * vocab, scale: 2)
        func f() -> Double {
            let (sum, n) = CrossEntropy.forward(logits: logits.base, targets: targets, rows: rows, vocab: vocab)
            return sum / Double(n)
        }
        let loss = f()
        let d = FloatBuffer(count: rows * vocab)
        d.copy(from: logits)
        let (sum, n) = CrossEntropy.forwardBackward(logits: d.base, targets: targets, rows: rows, vocab: vocab, scale: 1 / 3)
        XCTAssertEqual(n, 3, "the ignored row is not counted")
        XCTAssertEqual(sum / Double(n), loss, accuracy: 1e-6)
        for j in 0..<vocab { XCTAssertEqual(d[vocab + j], 0, "the ignored row gets no gradient") }
        check.check("cross-entropy", analytic: d.array, buffer: logits.base, objective: f)
    }

    func testFastExp() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let e = FastMath.exp(x), ref = Foundation.exp(x)
            worst = max(worst, abs(e - ref) / ref)
            x += 0.0137
        }
        XCTAssertLessThan(worst, 1e-6)
        XCTAssertEqual(FastMath.exp(-200), 0, accuracy: 1e-37)
    }

    /// Four dot products at once give each one's bits exactly as `dot` does
    /// (generation's attention relies on it: the same tokens as before).
    func testDot4IsFourDotsBitForBit() {
        var rng = SplitMix64(seed: 9)
        for count in [3, 8, 13, 48, 64, 67] {
            let stride = count + 5
            let a = (0..<count).map { _ in Float(rng.nextUnit() * 2 - 1) }, b = (0..<(4 * stride)).map { _ in Float(rng.nextUnit() * 2 - 1) }
            let four = FastMath.dot4(a, b, stride: stride, count: count)
            for k in 0..<4 {
                let one = b.withUnsafeBufferPointer { FastMath.dot(a, $0.baseAddress! + k * stride, count: count) }
                XCTAssertEqual(four[k].bitPattern, one.bitPattern, "count \(count), product \(k)")
            }
        }
    }
}

import Foundation
