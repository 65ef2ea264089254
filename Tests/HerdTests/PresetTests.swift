import XCTest
import Herd

final class PresetTests: XCTestCase {
    func testLlama2ParameterCountsFromShapesAlone() {
        // The paper's sizes, exactly as Meta's checkpoints hold them.
        XCTAssertEqual(LlamaConfig.presets["llama2-7b"]!.parameterCount, 6_738_415_616)
        XCTAssertEqual(LlamaConfig.presets["llama2-13b"]!.parameterCount, 13_015_864_320)
        XCTAssertEqual(LlamaConfig.presets["llama2-70b"]!.parameterCount, 68_976_648_192)
    }

    func testLayoutMatchesTheCount() throws {
        var c = LlamaConfig.presets["tiny-gqa"]!
        c.vocabSize = 17
        let layout = ParameterLayout(config: c)
        XCTAssertEqual(layout.total, c.parameterCount)
        XCTAssertEqual(layout.spec(named: "layers.1.attention.wk.weight")?.shape, [16, 32])
        XCTAssertEqual(layout.spec(named: "layers.0.feed_forward.w2.weight")?.role, .rowParallel)
        XCTAssertEqual(layout.spec(named: "output.weight")?.role, .vocabParallel)
        // wq|wk|wv and w1|w3 are adjacent, which the fused products rely on.
        let l = layout.layers[0]
        XCTAssertEqual(l.wk, l.wq + c.dim * c.dim)
        XCTAssertEqual(l.wv, l.wk + c.kvDim * c.dim)
        XCTAssertEqual(l.w3, l.w1 + c.ffnDim * c.dim)
    }

    func testShapeValidation() {
        var c = LlamaConfig.presets["llama2-70b"]!
        c.kvHeads = 6
        XCTAssertThrowsError(try c.validate()) { XCTAssertEqual(($0 as? ConfigError)?.field, "kv_heads") }
        c.kvHeads = 8
        c.heads = 60
        XCTAssertThrowsError(try c.validate()) { XCTAssertEqual(($0 as? ConfigError)?.field, "heads") }
    }
}

final class LibraryTests: XCTestCase {
    func testSystemLibrariesAnswer() {
        XCTAssertTrue(Libraries.openBLAS.contains("OpenBLAS"), Libraries.openBLAS)
        XCTAssertTrue(Libraries.mpi.contains("Open MPI"), Libraries.mpi)
        XCTAssertTrue(Libraries.zstd.hasPrefix("zstd 1."), Libraries.zstd)
    }
}
