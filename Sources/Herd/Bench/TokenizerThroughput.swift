import Foundation

/// The SentencePiece encoder's speed on documents, the way preparation runs
/// it: one encoder per thread, documents given as UTF-8 bytes.
public enum TokenizerThroughput {
    public struct Figures: Sendable {
        public var bytes: Int
        public var tokens: Int
        /// A fresh encoder per pass (every segment merged once before it is cached) and a warm one.
        public var coldMBPerSecond: Double
        public var warmMBPerSecond: Double
    }

    /// Encodes `documents` `passes` times with one encoder (the first pass
    /// cold) and reports both rates.
    public static func measure(tokenizer: SentencePieceTokenizer, documents: [String], passes: Int = 3) -> Figures {
        var docs = documents.map { Array($0.utf8) }
        let bytes = docs.reduce(0) { $0 + $1.count }
        func pass(_ e: SentencePieceEncoder) -> (Int, Double) {
            var out: [TokenID] = []
            out.reserveCapacity(1 << 20)
            var n = 0
            let start = DispatchTime.now().uptimeNanoseconds
            for i in docs.indices {
                out.removeAll(keepingCapacity: true)
                docs[i].withUnsafeBufferPointer { e.encode($0, first: true, last: true, into: &out) }
                n += out.count
            }
            return (n, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let encoder = SentencePieceEncoder(tokenizer)
        let (tokens, cold) = pass(encoder)
        var warm = Double.infinity
        for _ in 1..<max(passes, 2) { warm = min(warm, pass(encoder).1) }
        return Figures(bytes: bytes, tokens: tokens, coldMBPerSecond: Double(bytes) / cold / 1e6, warmMBPerSecond: Double(bytes) / warm / 1e6)
    }

    /// Tiny Shakespeare cut into documents at its blank lines (each speech one document).
    public static func documents(of text: String) -> [String] {
        text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
    }
}
