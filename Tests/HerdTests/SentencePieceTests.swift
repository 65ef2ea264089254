import XCTest
import Foundation
import Herd

/// Herd's SentencePiece against the SentencePiece library's own ids
/// (Tests/Data/spm-cases.json, made by Tests/Data/make_spm_fixtures.py).
final class SentencePieceTests: XCTestCase {
    struct Case: Decodable { var text: String; var ids: [TokenID]; var decoded: String }
    struct ChatCase: Decodable { var dialog: [ChatMessage]; var ids: [TokenID] }
    struct Fixture: Decodable { var llama2: [Case]; var small: [Case]; var chat: [ChatCase] }
    var fixture: Fixture {
        try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: URL(fileURLWithPath: "Tests/Data/spm-cases.json")))
    }
    var cases: [String: [Case]] { ["llama2": fixture.llama2, "small": fixture.small] }
    let llama = "../shared/data/llama2-tokenizer.model"

    func check(_ t: SentencePieceTokenizer, _ cases: [Case], line: UInt = #line) throws {
        for c in cases {
            XCTAssertEqual(try t.encode(c.text), c.ids, "encode \(c.text.debugDescription)", line: line)
            XCTAssertEqual(t.decode(c.ids), c.decoded, "decode \(c.text.debugDescription)", line: line)
        }
    }

    func testLlama2TokenizerMatchesSentencePiece() throws {
        try require(FileManager.default.fileExists(atPath: llama), llama, "make test needs ../shared/data beside the package")
        let t = try SentencePieceTokenizer(path: llama)
        XCTAssertEqual(t.vocabSize, 32000)
        XCTAssertEqual([t.unkID, t.bosID, t.eosID], [0, 1, 2])
        try check(t, cases["llama2"]!)
        XCTAssertEqual(t.encode("Hi", bos: true, eos: true).first, 1)
        XCTAssertEqual(t.encode("Hi", bos: true, eos: true).last, 2)
    }

    func testOwnSmallModelMatchesSentencePiece() throws {
        let t = try SentencePieceTokenizer(path: "Tests/Data/spm-small.model")
        XCTAssertEqual(t.vocabSize, 400)
        try check(t, cases["small"]!)
        // Characters the small model never saw fall back to bytes and come back whole.
        let ids = try t.encode("日本 🦙")
        XCTAssertEqual(t.decode(ids), "日本 🦙")
    }

    func testChatFormatIsMetas() throws {
        try require(FileManager.default.fileExists(atPath: llama), llama, "make test needs ../shared/data beside the package")
        let t = try SentencePieceTokenizer(path: llama)
        for c in fixture.chat {
            let (ids, assistant) = try ChatFormat.encode(c.dialog, tokenizer: t)
            XCTAssertEqual(ids, c.ids, "\(c.dialog.map(\.content))")
            XCTAssertEqual(assistant.count, ids.count)
            // The supervised tokens decode to the answers (each ending with EOS).
            let answers = c.dialog.filter { $0.role == .assistant }.map { $0.content.trimmingCharacters(in: .whitespacesAndNewlines) }
            let learned = ids.enumerated().filter { assistant[$0.offset] }.map(\.element)
            XCTAssertEqual(learned.filter { $0 == t.eosID }.count, answers.count)
            XCTAssertEqual(t.decode(learned.filter { $0 != t.eosID }).replacingOccurrences(of: "  ", with: " ").trimmingCharacters(in: .whitespaces),
                           answers.joined(separator: " "))
        }
        XCTAssertThrowsError(try ChatFormat.encode([ChatMessage(.user, "a"), ChatMessage(.user, "b")], tokenizer: t)) {
            XCTAssertEqual($0 as? ChatFormatError, .order(index: 1, expected: "assistant", found: .user))
        }
    }

    func testFilesThatAreNotModelsAreClearErrors() throws {
        let dir = NSTemporaryDirectory() + "herd-spm-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = try Data(contentsOf: URL(fileURLWithPath: "Tests/Data/spm-small.model"))
        for (name, bytes) in [("truncated", good.prefix(good.count / 2)), ("garbage", Data((0..<300).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })),
                              ("text", Data("this is a text file\n".utf8)), ("empty", Data())] {
            let path = "\(dir)/\(name).model"
            try bytes.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try SentencePieceTokenizer(path: path), name) { e in
                XCTAssertTrue("\(e)".contains(path), "\(name): \(e)")
            }
        }
    }

    func testEncodingSpeed() throws {
        try require(FileManager.default.fileExists(atPath: llama), llama, "make test needs ../shared/data beside the package")
        let t = try SentencePieceTokenizer(path: llama)
        let text = try String(contentsOfFile: "../shared/data/tinyshakespeare.txt", encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = Date()
        var n = 0
        for l in lines { n += try t.encode(l).count }
        let s = Date().timeIntervalSince(start)
        print(String(format: "SentencePiece encode (Llama 2 model, line by line): %.2f MB/s, %d tokens", Double(text.utf8.count) / s / 1e6, n))
        XCTAssertGreaterThan(n, 250_000)
    }
}
