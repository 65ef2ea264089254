import XCTest
import Herd

final class TokenizerTests: XCTestCase {
    func testCharTokenizerRoundTripAndOrder() throws {
        let t = CharTokenizer(corpus: "hello, wörld\n")
        XCTAssertEqual(t.vocabSize, 11)
        XCTAssertEqual(t.characters.first, "\n")  // code-point order, as nanoGPT
        let ids = try t.encode("hello wörld")
        XCTAssertEqual(t.decode(ids), "hello wörld")
        XCTAssertThrowsError(try t.encode("hex")) { error in
            XCTAssertEqual(error as? TokenizerError, .unknownCharacter("x", offset: 2))
        }
    }

    func testByteTokenizer() throws {
        let t = ByteTokenizer()
        let ids = try t.encode("é!")
        XCTAssertEqual(ids, [0xC3, 0xA9, 0x21])
        XCTAssertEqual(t.decode(ids), "é!")
    }

    func testSplitAndWindows() {
        let d = TokenDataset(tokens: (0..<100).map(TokenID.init), validationFraction: 0.1, seqLen: 4)
        XCTAssertEqual(d.train.count, 90)
        XCTAssertEqual(d.validation.first, 90)
        XCTAssertEqual(d.validationWindows, 2)
        var x = [TokenID](repeating: 0, count: 4), y = x
        d.trainWindow(seed: 1, index: 17, tokens: &x, targets: &y)
        XCTAssertEqual(y, x.map { $0 + 1 }, "targets are the next tokens")
        var x2 = x, y2 = y
        d.trainWindow(seed: 1, index: 17, tokens: &x2, targets: &y2)
        XCTAssertEqual(x, x2, "a window depends only on (seed, index)")
    }
}
