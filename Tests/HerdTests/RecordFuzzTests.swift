import XCTest
import Foundation
import Herd

/// No corpus line crashes a reader: thousands of mutated JSON-lines records
/// of every kind the RLHF loop reads (demonstrations, prompts, comparisons,
/// instructed dialogues) — bytes dropped, doubled, replaced, truncated,
/// values swapped for other types, brackets nested ten thousand deep,
/// invalid UTF-8 — are each read in this process (a trap or a stack
/// overflow would end the test run). Every line is read or refused with a
/// RecordError naming the file and the line.
final class RecordFuzzTests: XCTestCase {
    static let dir = NSTemporaryDirectory() + "herd-record-fuzz-\(getpid())"

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static let seeds: [(name: String, line: String, read: (String) throws -> Int)] = [
        ("demonstrations",
         #"{"dialogue":[{"content":"Answer briefly.","role":"system"},{"content":"What is 0+0?","role":"user"},{"content":"0","role":"assistant"}],"id":"d0"}"#,
         { try JSONLines.demonstrations(path: $0).count }),
        ("prompts",
         #"{"dialogue":[{"content":"Answer briefly.","role":"system"},{"content":"Capitals: tree","role":"user"}],"id":"p1","safety":false}"#,
         { try JSONLines.read(PromptRecord.self, path: $0).count }),
        ("comparisons",
         #"{"batch":"v1","chosen":1,"degree":"better","dialogue":[{"content":"Capitals: cat","role":"user"}],"prompt_id":"c0","responses":["DOG","CAT"],"safe":[true,true]}"#,
         { try JSONLines.comparisons(path: $0).count }),
        ("dialogues",
         #"{"id":"g0","instruction":"(start with OK)","turns":["Say twice: sun","Capitals: cat"]}"#,
         { try JSONLines.instructedDialogues(path: $0).count }),
    ]

    static let replacements = ["0", "-1", "1e308", "null", "true", "\"\"", "[]", "{}", "\"x\"", "99999999999999999999", "-0.0",
                               "[[[[[[", "}}}", "\"\\u0000\"", "\"\\ud800\"", "\"é😀\"", "NaN", ",", ":"]

    static func mutate<G: RandomNumberGenerator>(_ line: String, _ g: inout G) -> [UInt8] {
        var bytes = Array(line.utf8)
        for _ in 0..<Int.random(in: 1...4, using: &g) where !bytes.isEmpty {
            let i = Int.random(in: 0..<bytes.count, using: &g)
            switch Int.random(in: 0..<8, using: &g) {
            case 0: bytes.remove(at: i)
            case 1: bytes.insert(bytes[i], at: i)
            case 2: bytes[i] = UInt8.random(in: 0...255, using: &g)   // invalid UTF-8 among them
            case 3: bytes = Array(bytes[..<i])
            case 4, 5:   // a value after a colon replaced by another type
                if let colon = bytes[i...].firstIndex(of: UInt8(ascii: ":")) {
                    let end = bytes[(colon + 1)...].firstIndex { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "}") } ?? bytes.count
                    bytes.replaceSubrange((colon + 1)..<end, with: Array(replacements.randomElement(using: &g)!.utf8))
                }
            case 6: bytes.insert(contentsOf: Array(replacements.randomElement(using: &g)!.utf8), at: i)
            default: bytes.insert(contentsOf: [UInt8](repeating: UInt8(ascii: "["), count: 10_000), at: i)
            }
        }
        return bytes
    }

    func testMutatedRecordsAreReadOrRefusedByLine() throws {
        try FileManager.default.createDirectory(atPath: Self.dir, withIntermediateDirectories: true)
        var g = SplitMix64(seed: 2026)
        var read = 0, refused = 0
        for round in 0..<600 {
            for seed in Self.seeds {
                // A good line, the mutant, a good line: the refusal must name line 2.
                let path = "\(Self.dir)/\(seed.name)-\(round).jsonl"
                var file = Array((seed.line + "\n").utf8)
                file += Self.mutate(seed.line, &g).filter { $0 != 0x0A } + [0x0A]
                file += Array((seed.line + "\n").utf8)
                try Data(file).write(to: URL(fileURLWithPath: path))
                do {
                    _ = try seed.read(path)
                    read += 1
                } catch let e as RecordError {
                    refused += 1
                    XCTAssertEqual(e.file, path)
                    XCTAssertEqual(e.line, 2, "\(e)")
                    XCTAssertFalse(e.message.isEmpty)
                } catch {
                    XCTFail("\(seed.name): not a RecordError: \(error)")
                }
                try? FileManager.default.removeItem(atPath: path)
            }
        }
        print("record fuzz: \(read) read, \(refused) refused with their line")
        XCTAssertGreaterThan(refused, 1000, "the mutations are mostly malformed")
    }
}
