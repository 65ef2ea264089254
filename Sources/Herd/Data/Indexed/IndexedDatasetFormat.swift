import Foundation

/// Megatron-LM's indexed dataset (`MMapIndexedDataset`, megatron-core's
/// `megatron/core/datasets/indexed_dataset.py`): the token datasets that
/// Megatron's `preprocess_data.py` writes and its GPT datasets read. Herd
/// reads and writes the same bytes, so that a corpus prepared by either
/// trains in the other.
///
/// A dataset is two files beside one prefix:
/// - `prefix.bin`: the tokens of every sequence back to back, in the dtype;
/// - `prefix.idx`, all little-endian and unaligned (the header is 34 bytes):
///   magic `MMIDIDX\0\0` (9), version UInt64 = 1, dtype code UInt8,
///   sequence count S UInt64, document index count D UInt64, then
///   Int32[S] sequence lengths in tokens, Int64[S] sequence byte offsets
///   into the .bin, Int64[D] document indices (the sequence each document
///   starts at: 0 first, S last, so D = documents + 1), and for multimodal
///   datasets Int8[S] modes, which Herd does not support.
public enum IndexedDatasetFormat {
    public static let magic: [UInt8] = Array("MMIDIDX".utf8) + [0, 0]
    public static let version: UInt64 = 1
    /// magic + version + dtype + S + D.
    public static let headerSize = 9 + 8 + 1 + 8 + 8

    public static func binPath(_ prefix: String) -> String { prefix + ".bin" }
    public static func idxPath(_ prefix: String) -> String { prefix + ".idx" }

    /// The prefix of a dataset named by its prefix or by either of its files.
    public static func prefix(of path: String) -> String {
        for suffix in [".bin", ".idx"] where path.hasSuffix(suffix) { return String(path.dropLast(suffix.count)) }
        return path
    }
}

/// Megatron's dtype codes (its `DType` enum: the numpy types by name).
public enum IndexedDType: UInt8, Sendable, Codable, CaseIterable {
    case uint8 = 1, int8, int16, int32, int64, float64, float32, uint16

    public var byteSize: Int {
        switch self {
        case .uint8, .int8: return 1
        case .int16, .uint16: return 2
        case .int32, .float32: return 4
        case .int64, .float64: return 8
        }
    }

    /// The numpy name, as Megatron's messages and files call it.
    public var name: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .int16: return "int16"
        case .int32: return "int32"
        case .int64: return "int64"
        case .float64: return "float64"
        case .float32: return "float32"
        case .uint16: return "uint16"
        }
    }

    /// What Megatron picks for a vocabulary (`DType.optimal_dtype`): uint16
    /// below 65,500 tokens (not 65,536: Megatron's margin, kept so that
    /// both tools choose the same file for the same tokenizer), else int32.
    public static func optimal(vocabSize: Int) -> IndexedDType { vocabSize < 65_500 ? .uint16 : .int32 }

    /// The dtypes Herd trains on: the two `optimal` chooses. Others (floats,
    /// int64, bytes) are refused by name rather than converted, since a
    /// token file in them was not made for language-model pretraining.
    public var isTokenDType: Bool { self == .uint16 || self == .int32 }

    /// The token values the dtype holds (for the token dtypes).
    var tokenRange: ClosedRange<Int32> {
        switch self {
        case .uint16: return 0...Int32(UInt16.max)
        case .uint8: return 0...Int32(UInt8.max)
        case .int8: return Int32(Int8.min)...Int32(Int8.max)
        case .int16: return Int32(Int16.min)...Int32(Int16.max)
        default: return Int32.min...Int32.max
        }
    }
}

/// A dataset that cannot be read or written, naming the file and what was
/// expected of it.
public struct IndexedDatasetError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var message: String
    public init(file: String, message: String) { self.file = file; self.message = message }
    public var description: String { "\(file): \(message)" }
}

/// The fixed 34 bytes at the start of an .idx and the layout they imply.
public struct IndexedDatasetHeader: Equatable, Sendable {
    public var dtype: IndexedDType
    /// S: sequences, each with a length and a pointer.
    public var sequenceCount: Int
    /// D: document indices, one more than the documents.
    public var documentIndexCount: Int

    public init(dtype: IndexedDType, sequenceCount: Int, documentIndexCount: Int) {
        self.dtype = dtype
        self.sequenceCount = sequenceCount
        self.documentIndexCount = documentIndexCount
    }

    /// Reads a header; `bytes` may be shorter than 34 (then it says so).
    /// Counts above Int.max are refused here, so that callers hold Ints.
    public static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> IndexedDatasetHeader {
        func fail(_ m: String) -> IndexedDatasetError { IndexedDatasetError(file: file, message: m) }
        guard bytes.count >= IndexedDatasetFormat.headerSize else {
            throw fail("is \(bytes.count) bytes, shorter than the \(IndexedDatasetFormat.headerSize)-byte header of a Megatron index")
        }
        guard bytes.prefix(9).elementsEqual(IndexedDatasetFormat.magic) else {
            throw fail("does not start with Megatron's index magic MMIDIDX\\0\\0 (is it an .idx of MMapIndexedDataset?)")
        }
        let version = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 9, as: UInt64.self))
        guard version == IndexedDatasetFormat.version else {
            throw fail("has index version \(version); Megatron writes and reads version 1 only")
        }
        let code = bytes[17]
        guard let dtype = IndexedDType(rawValue: code) else {
            throw fail("has dtype code \(code); Megatron's codes are 1 (uint8) to 8 (uint16)")
        }
        let s = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 18, as: UInt64.self))
        let d = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 26, as: UInt64.self))
        guard s <= UInt64(Int.max), d <= UInt64(Int.max) else {
            throw fail("has an impossible sequence count \(s) or document index count \(d)")
        }
        return IndexedDatasetHeader(dtype: dtype, sequenceCount: Int(s), documentIndexCount: Int(d))
    }

    public func serialized() -> [UInt8] {
        var out = IndexedDatasetFormat.magic
        out.reserveCapacity(IndexedDatasetFormat.headerSize)
        func put(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put(IndexedDatasetFormat.version)
        out.append(dtype.rawValue)
        put(UInt64(sequenceCount))
        put(UInt64(documentIndexCount))
        return out
    }

    /// Where each section starts.
    public var lengthsOffset: Int { IndexedDatasetFormat.headerSize }
    public var pointersOffset: Int { lengthsOffset + 4 * sequenceCount }
    public var documentIndicesOffset: Int { pointersOffset + 8 * sequenceCount }

    /// The size of an .idx with this header and no modes: 34 + 12S + 8D;
    /// nil when that overflows (a header no real file matches).
    public var indexFileSize: Int? {
        let (s12, o1) = sequenceCount.multipliedReportingOverflow(by: 12)
        let (d8, o2) = documentIndexCount.multipliedReportingOverflow(by: 8)
        let (sum, o3) = s12.addingReportingOverflow(d8)
        let (total, o4) = sum.addingReportingOverflow(IndexedDatasetFormat.headerSize)
        return o1 || o2 || o3 || o4 ? nil : total
    }
}
