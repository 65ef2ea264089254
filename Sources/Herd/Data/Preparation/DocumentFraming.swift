import Foundation

/// Turns a document's chunks into the ids a pretraining dataset holds, as
/// Llama's pretraining data is laid out: BOS, the text's ids, EOS. Byte and
/// char vocabularies have no BOS or EOS; their documents end with "\n".
final class DocumentFraming {
    enum Encoding {
        case sentencePiece(SentencePieceEncoder)
        case byte
        case char(CharTokenizer)
    }
    let encoding: Encoding
    let vocabSize: Int
    private let bos: TokenID?, eos: TokenID

    init(tokenizer: any Tokenizer) {
        vocabSize = tokenizer.vocabSize
        switch tokenizer {
        case let sp as SentencePieceTokenizer:
            encoding = .sentencePiece(SentencePieceEncoder(sp))
            bos = sp.bosID; eos = sp.eosID
        case let c as CharTokenizer:
            encoding = .char(c)
            bos = nil; eos = (try? c.encode("\n"))?.first ?? 0
        default:
            encoding = .byte
            bos = nil; eos = 10
        }
    }

    /// Appends the ids of one chunk (`first`: the document's first, with BOS
    /// before it; `last`: its last, with EOS after).
    func encode(_ chunk: UnsafeBufferPointer<UInt8>, first: Bool, last: Bool, into out: inout [TokenID]) throws {
        if first, let bos { out.append(bos) }
        switch encoding {
        case let .sentencePiece(e): e.encode(chunk, first: first, last: last, into: &out)
        case .byte: for b in chunk { out.append(TokenID(b)) }
        case let .char(c):
            // The reader hands out whole characters, so a chunk decodes alone.
            out += try c.encode(String(decoding: chunk, as: UTF8.self))
        }
        if last { out.append(eos) }
    }
}
