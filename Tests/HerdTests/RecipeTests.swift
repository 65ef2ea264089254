import XCTest
import Foundation
import Herd

/// The jobs in jobs/ train as they claim.
final class RecipeTests: XCTestCase {
    /// nanoGPT's CPU Shakespeare recipe as a Llama: 2000 steps on the real
    /// text must reach a held-out loss of at most 1.70 (nanoGPT's GPT-2
    /// reaches 1.88; the same Llama in PyTorch about 1.69). About a minute.
    func testShakespeareRecipeReachesTheTargetLoss() throws {
        let corpus = "../shared/data/tinyshakespeare.txt"
        try require(FileManager.default.fileExists(atPath: corpus), corpus, "make test needs ../shared/data beside the package")
        let out = NSTemporaryDirectory() + "herd-test-shakespeare-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let m = try JobManifest.load(path: "jobs/shakespeare-char.yaml", overrides: .init(output: out))
        let trainer = try Trainer(manifest: m)
        let summary = try trainer.run(output: { _ in })
        print("shakespeare-char: held-out loss \(summary.finalValidationLoss), \(Int(summary.tokensPerSecond)) tokens/s")
        XCTAssertLessThanOrEqual(summary.finalValidationLoss, 1.70)

        // The run directory holds one JSON object per logged step, then evaluations.
        let events = try RunDirectory(out).readEvents()
        let steps = events.filter { $0.event == .step }
        XCTAssertEqual(steps.count, 2000 / m.logInterval + 1)
        for (key, value) in [("step", steps.last?.step.map(Double.init)), ("loss", steps.last?.loss), ("lr", steps.last?.lr),
                             ("grad_norm", steps.last?.gradNorm), ("tokens_per_s", steps.last?.tokensPerSecond)] { XCTAssertNotNil(value, key) }
        let evals = events.filter { $0.event == .eval }
        XCTAssertEqual(evals.count, 8)
        XCTAssertEqual(evals.last?.validationLoss, summary.finalValidationLoss)

        // bf16 mixed precision reaches the same held-out loss within 0.02.
        var half = m
        half.precision = .bf16
        half.output = out + "-bf16"
        defer { try? FileManager.default.removeItem(atPath: half.output) }
        let bf16 = try Trainer(manifest: half).run(output: { _ in })
        print("shakespeare-char in bf16: held-out loss \(bf16.finalValidationLoss), \(Int(bf16.tokensPerSecond)) tokens/s")
        XCTAssertEqual(bf16.finalValidationLoss, summary.finalValidationLoss, accuracy: 0.02)
        XCTAssertNotEqual(bf16.finalValidationLoss, summary.finalValidationLoss, "bf16 rounds: it cannot be the fp32 run")
    }
}
