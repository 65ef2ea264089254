import XCTest
import Foundation
import Herd

/// Token shards and the sampler that maps (step, rank) to sequences.
final class TokenShardTests: XCTestCase {
    func testAVirtualCorpusOfTwoTrillionTokensIsSampledWithoutReadingIt() {
        // 500,000 shards of 4M tokens: 2×10¹² tokens, only counts in memory.
        let counts = [Int](repeating: 4_000_000, count: 500_000)
        let s = ShardSampler(shardTokenCounts: counts, seqLen: 4095, seed: 7)
        XCTAssertEqual(s.totalSlots, 500_000 * (4_000_000 / 4096))
        // The paper's batch: 4M tokens = 1024 sequences of 4096; a step deep into training.
        let step = 450_000
        let a = s.sequences(step: step, globalBatch: 1024, dpRank: 3, dpSize: 64)
        XCTAssertEqual(a.count, 16)
        for loc in a {
            XCTAssertTrue((0..<500_000).contains(loc.shard))
            XCTAssertTrue(loc.offset % 4096 == 0 && loc.offset + 4096 <= 4_000_000)
        }
        XCTAssertEqual(Set(a.map { "\($0.shard):\($0.offset)" }).count, 16, "distinct sequences")
        let again = ShardSampler(shardTokenCounts: counts, seqLen: 4095, seed: 7).sequences(step: step, globalBatch: 1024, dpRank: 3, dpSize: 64)
        XCTAssertTrue(zip(a, again).allSatisfy { $0.shard == $1.shard && $0.offset == $1.offset }, "resume sees the same")
    }

    func testEveryRankSliceIsDisjointAndTogetherTheyAreTheBatch() {
        let s = ShardSampler(shardTokenCounts: [1000, 37, 5000, 0, 2600], seqLen: 15, seed: 3)
        for step in [0, 5, 41] {
            let whole = s.sequences(step: step, globalBatch: 24, dpRank: 0, dpSize: 1)
            for dp in [2, 3, 4, 8] {
                let parts = (0..<dp).map { s.sequences(step: step, globalBatch: 24, dpRank: $0, dpSize: dp) }
                let keys = parts.map { Set($0.map { "\($0.shard):\($0.offset)" }) }
                for i in 0..<dp { for j in (i + 1)..<dp { XCTAssertTrue(keys[i].isDisjoint(with: keys[j])) } }
                let joined = parts.flatMap { $0 }
                XCTAssertTrue(zip(joined, whole).allSatisfy { $0.shard == $1.shard && $0.offset == $1.offset },
                              "dp=\(dp) ranks in order are the dp=1 batch")
            }
        }
    }

    func testNoSlotTwiceInAnEpoch() {
        let counts = [700, 33, 1600, 16, 15, 900]   // uneven, and shards too small for a sequence
        let s = ShardSampler(shardTokenCounts: counts, seqLen: 15, seed: 11)
        let n = s.totalSlots
        XCTAssertEqual(n, 43 + 2 + 100 + 1 + 0 + 56)
        var seen = Set<Int>()
        for g in 0..<n { seen.insert(s.slot(forSequence: g)) }
        XCTAssertEqual(seen, Set(0..<n), "each slot once per epoch")
        let second = (n..<(2 * n)).map { s.slot(forSequence: $0) }
        XCTAssertEqual(Set(second), Set(0..<n))
        XCTAssertNotEqual(second, (0..<n).map { s.slot(forSequence: $0) }, "a new order each epoch")
        for slot in 0..<n {
            let (shard, offset) = s.location(ofSlot: slot)
            XCTAssertLessThanOrEqual(offset + 16, counts[shard])
        }
    }

    func testPrepareReadBackAndCorruption() throws {
        let dir = NSTemporaryDirectory() + "herd-shards-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let text = String(repeating: "Now is the winter of our discontent. ", count: 300)
        try text.write(toFile: dir + "/c.txt", atomically: true, encoding: .utf8)
        let (train, _) = try ShardDataset.prepare(corpus: dir + "/c.txt", tokenizer: "char", out: dir + "/s",
                                                  shardTokens: 1000, validationFraction: 0.1)
        XCTAssertEqual(train.shards.count, 10)
        let ids = try CharTokenizer(corpus: text).encode(text)
        let reader = try TokenShards.Reader(dir: dir + "/s/train")
        try reader.verify()
        var window = [TokenID](repeating: 0, count: 50)
        try window.withUnsafeMutableBufferPointer { try reader.read(shard: 3, offset: 100, count: 50, into: $0.baseAddress!) }
        XCTAssertEqual(window, Array(ids[3100..<3150]))

        // A flipped byte: verify names the shard.
        let shard = dir + "/s/train/shard-000002.bin"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: shard))
        bytes[200] ^= 1
        try bytes.write(to: URL(fileURLWithPath: shard))
        XCTAssertThrowsError(try TokenShards.Reader(dir: dir + "/s/train").verify()) { XCTAssertTrue("\($0)".hasPrefix(shard + ": checksum"), "\($0)") }
        // Truncated: the header disagrees with the size.
        try bytes.prefix(500).write(to: URL(fileURLWithPath: shard))
        XCTAssertThrowsError(try window.withUnsafeMutableBufferPointer {
            try TokenShards.Reader(dir: dir + "/s/train").read(shard: 2, offset: 0, count: 5, into: $0.baseAddress!)
        }) { XCTAssertTrue("\($0)".hasPrefix(shard + ": header says"), "\($0)") }
        // An index that lies about a shard's length.
        let index = dir + "/s/train/index.json"
        let lying = try String(contentsOfFile: index, encoding: .utf8).replacingOccurrences(of: "\"tokens\" : 1000", with: "\"tokens\" : 1200")
        try lying.write(toFile: index, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try window.withUnsafeMutableBufferPointer {
            try TokenShards.Reader(dir: dir + "/s/train").read(shard: 0, offset: 0, count: 5, into: $0.baseAddress!)
        }) { XCTAssertTrue("\($0)".contains("the index says 1200"), "\($0)") }
    }
}

extension TokenShardTests {
    /// A job reading shards trains on the same sequences in every layout.
    func testShardJobsAgreeAcrossLayouts() throws {
        let dir = NSTemporaryDirectory() + "herd-shardjob-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let text = (try? String(contentsOfFile: "../shared/data/tinyshakespeare.txt", encoding: .utf8)) ?? String(repeating: "To be or not to be. ", count: 5000)
        // JSON lines, a paragraph each: the held-out split starts at a document.
        let lines = try text.prefix(100_000).components(separatedBy: "\n\n").map {
            String(decoding: try JSONSerialization.data(withJSONObject: ["text": $0]), as: UTF8.self)
        }
        try lines.joined(separator: "\n").write(toFile: dir + "/c.jsonl", atomically: true, encoding: .utf8)
        let prep = try HerdBinary.run(["data", "prepare", dir + "/c.jsonl", "--tokenizer", "byte", "--out", dir + "/s"])
        XCTAssertEqual(prep.status, 0, prep.err)
        var curves: [[Double]] = []
        for (d, t) in [(1, 1), (2, 2)] {
            try """
            kind: pretrain
            seed: 2
            model: {preset: tiny-gqa}
            data: {shards: \(dir)/s, seq_len: 16}
            batch: {sequences: 8}
            optimizer: {lr: 3e-3}
            schedule: {warmup_steps: 2}
            steps: 10
            log_interval: 1
            threads: 2
            parallelism: {data: \(d), tensor: \(t)}
            output: \(dir)/run-\(d)\(t)
            """.write(toFile: dir + "/job.yaml", atomically: true, encoding: .utf8)
            let r = try HerdBinary.run(["run", dir + "/job.yaml"])
            XCTAssertEqual(r.status, 0, r.out + r.err)
            let events = try RunDirectory(dir + "/run-\(d)\(t)").readEvents()
            curves.append(events.filter { $0.event == .step }.map { $0.loss! })
        }
        XCTAssertEqual(curves[0].count, 10)
        for (a, b) in zip(curves[0], curves[1]) { XCTAssertLessThanOrEqual(abs(a - b) / a, 1e-4) }
    }
}

extension TokenShardTests {
    func testChecksumDoesNotDependOnHowTheBytesArrive() {
        var r = SplitMix64(seed: 5)
        let bytes = (0..<1000).map { _ in UInt8(truncatingIfNeeded: r.next()) }
        func sum(_ cuts: [Int]) -> UInt64 {
            var c = Checksum64(), start = 0
            for end in cuts + [bytes.count] {
                bytes[start..<end].withUnsafeBytes { c.update($0) }
                start = end
            }
            return c.value
        }
        let whole = sum([])
        XCTAssertEqual(sum([1, 2, 3, 9, 17, 500, 999]), whole)
        XCTAssertEqual(sum(Array(stride(from: 7, to: 1000, by: 7))), whole)
        var flipped = bytes
        flipped[421] ^= 0x10
        var c = Checksum64()
        flipped.withUnsafeBytes { c.update($0) }
        XCTAssertNotEqual(c.value, whole)
        var shorter = Checksum64()
        bytes.dropLast().withUnsafeBytes { shorter.update($0) }
        XCTAssertNotEqual(shorter.value, whole)
    }
}

extension TokenShardTests {
    /// Streaming prepare of a directory gives exactly the tokens (and split)
    /// of the in-memory corpus path.
    func testPrepareOfADirectoryEqualsTheInMemoryCorpus() throws {
        let dir = NSTemporaryDirectory() + "herd-prep-dir-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/c", withIntermediateDirectories: true)
        try String(repeating: "Once more unto the breach, dear friends; ", count: 40).write(toFile: dir + "/c/a.txt", atomically: true, encoding: .utf8)
        try String(repeating: "Ça va? Très bien. ", count: 30).write(toFile: dir + "/c/b.txt", atomically: true, encoding: .utf8)
        let corpus = try Corpus(path: dir + "/c")
        let tok = CharTokenizer(corpus: corpus.text)
        let expected = TokenDataset(tokens: try tok.encode(corpus.text), validationFraction: 0.1, seqLen: 8)
        _ = try ShardDataset.prepare(corpus: dir + "/c", tokenizer: "char", out: dir + "/s", shardTokens: 300, validationFraction: 0.1)
        func all(_ split: String) throws -> [TokenID] {
            let r = try TokenShards.Reader(dir: dir + "/s/" + split)
            return try r.index.shards.enumerated().flatMap { i, s in
                var buf = [TokenID](repeating: 0, count: s.tokens)
                try buf.withUnsafeMutableBufferPointer { try r.read(shard: i, offset: 0, count: s.tokens, into: $0.baseAddress!) }
                return buf
            }
        }
        XCTAssertEqual(try all("train"), expected.train)
        XCTAssertEqual(try all("validation"), expected.validation)
        let saved = try JSONDecoder().decode(CharTokenizer.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/s/tokenizer.json")))
        XCTAssertEqual(saved.characters, tok.characters)
    }
}
