import Foundation

/// The fields of a SentencePiece `tokenizer.model` (a serialized
/// sentencepiece.ModelProto) that encoding and decoding need, read by hand:
/// ModelProto { pieces = 1 (SentencePiece { piece = 1, score = 2, type = 3 }),
/// trainer_spec = 2 { model_type = 3, byte_fallback = 35, unk_id = 40,
/// bos_id = 41, eos_id = 42, pad_id = 43 }, normalizer_spec = 3 { name = 1,
/// add_dummy_prefix = 3, remove_extra_whitespaces = 4, escape_whitespaces = 5 } }.
/// Every length is checked against the bytes left, so a truncated or
/// foreign file is an error naming it, never an out-of-bounds read.
public struct SentencePieceModel: Sendable {
    public enum PieceType: Int, Sendable { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }
    public struct Piece: Sendable { public var text: String; public var score: Float; public var type: PieceType }

    public var pieces: [Piece] = []
    public var modelType = 1            // UNIGRAM = 1, BPE = 2
    public var byteFallback = false
    public var unkID = 0, bosID = 1, eosID = 2, padID = -1
    public var normalizerName = ""
    public var addDummyPrefix = true
    public var removeExtraWhitespaces = true
    public var escapeWhitespaces = true

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw TokenizerError.badVocabulary("\(path): cannot read") }
        try self.init(data: data, path: path)
    }

    public init(data: Data, path: String) throws {
        let bytes = [UInt8](data)
        var top = ProtoReader(bytes: bytes[...], path: path)
        while let (field, wire) = try top.nextField() {
            switch (field, wire) {
            case (1, 2):
                var r = ProtoReader(bytes: try top.lengthDelimited(), path: path)
                var p = Piece(text: "", score: 0, type: .normal)
                while let (f, w) = try r.nextField() {
                    switch (f, w) {
                    case (1, 2): p.text = String(decoding: try r.lengthDelimited(), as: UTF8.self)
                    case (2, 5): p.score = Float(bitPattern: try r.fixed32())
                    case (3, 0):
                        let t = Int(try r.varint())
                        guard let type = PieceType(rawValue: t) else { throw r.error("piece type \(t) is not a SentencePiece type") }
                        p.type = type
                    default: try r.skip(wire: w)
                    }
                }
                pieces.append(p)
            case (2, 2):
                var r = ProtoReader(bytes: try top.lengthDelimited(), path: path)
                while let (f, w) = try r.nextField() {
                    switch (f, w) {
                    case (3, 0): modelType = Int(try r.varint())
                    case (35, 0): byteFallback = try r.varint() != 0
                    case (40, 0): unkID = Int(Int32(truncatingIfNeeded: try r.varint()))
                    case (41, 0): bosID = Int(Int32(truncatingIfNeeded: try r.varint()))
                    case (42, 0): eosID = Int(Int32(truncatingIfNeeded: try r.varint()))
                    case (43, 0): padID = Int(Int32(truncatingIfNeeded: try r.varint()))
                    default: try r.skip(wire: w)
                    }
                }
            case (3, 2):
                var r = ProtoReader(bytes: try top.lengthDelimited(), path: path)
                while let (f, w) = try r.nextField() {
                    switch (f, w) {
                    case (1, 2): normalizerName = String(decoding: try r.lengthDelimited(), as: UTF8.self)
                    case (3, 0): addDummyPrefix = try r.varint() != 0
                    case (4, 0): removeExtraWhitespaces = try r.varint() != 0
                    case (5, 0): escapeWhitespaces = try r.varint() != 0
                    default: try r.skip(wire: w)
                    }
                }
            default: try top.skip(wire: wire)
            }
        }
        guard !pieces.isEmpty else { throw TokenizerError.badVocabulary("\(path): not a SentencePiece model (no pieces)") }
        guard modelType == 2 else {
            throw TokenizerError.badVocabulary("\(path): a SentencePiece model of type \(modelType); Herd reads BPE models (type 2), as Llama 2's is")
        }
        for id in [unkID, bosID, eosID] where id >= pieces.count {
            throw TokenizerError.badVocabulary("\(path): special id \(id) is outside the \(pieces.count) pieces")
        }
    }
}

/// Protocol-buffer wire format, bounds-checked.
struct ProtoReader {
    var bytes: ArraySlice<UInt8>
    let path: String

    func error(_ why: String) -> TokenizerError { .badVocabulary("\(path): not a SentencePiece model: \(why)") }

    mutating func varint() throws -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard let b = bytes.first else { throw error("a varint runs past the end of the file") }
            bytes = bytes.dropFirst()
            guard shift < 64 else { throw error("a varint longer than 10 bytes") }
            v |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
        }
    }

    mutating func nextField() throws -> (Int, Int)? {
        guard !bytes.isEmpty else { return nil }
        let key = try varint()
        let field = Int(key >> 3), wire = Int(key & 7)
        guard field > 0 else { throw error("field number 0") }
        return (field, wire)
    }

    mutating func lengthDelimited() throws -> ArraySlice<UInt8> {
        let n = try varint()
        guard n <= UInt64(bytes.count) else { throw error("a field of \(n) bytes with only \(bytes.count) left (truncated?)") }
        let out = bytes.prefix(Int(n))
        bytes = bytes.dropFirst(Int(n))
        return out
    }

    mutating func fixed32() throws -> UInt32 {
        guard bytes.count >= 4 else { throw error("a 4-byte field with \(bytes.count) bytes left") }
        let v = bytes.prefix(4).enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
        bytes = bytes.dropFirst(4)
        return v
    }

    mutating func skip(wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1: guard bytes.count >= 8 else { throw error("truncated 8-byte field") }; bytes = bytes.dropFirst(8)
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw error("wire type \(wire) is not used by SentencePiece models")
        }
    }
}
