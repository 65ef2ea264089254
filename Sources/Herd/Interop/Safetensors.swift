import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON
/// header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`,
/// then the raw little-endian tensors. Every offset and size is checked
/// against the file before any byte is read, so a truncated file or a
/// header that lies is an error naming the file, never an out-of-bounds read.
public struct SafetensorsFile {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var begin: Int
        public var end: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    let data: Data
    let dataStart: Int

    static let elementSize = ["F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1]

    public init(path: String) throws {
        self.path = path
        guard let d = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
            throw InteropError.file(path, "cannot read")
        }
        data = d
        guard d.count >= 8 else { throw InteropError.file(path, "too short for a safetensors header (\(d.count) bytes)") }
        let n = d.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian }
        guard n > 1, n <= UInt64(d.count - 8), n < 100_000_000 else {
            throw InteropError.file(path, "header length \(n) does not fit in the file of \(d.count) bytes")
        }
        dataStart = 8 + Int(n)
        guard let json = try? JSONSerialization.jsonObject(with: d.subdata(in: 8..<dataStart)) as? [String: Any] else {
            throw InteropError.file(path, "the header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var meta: [String: String] = [:]
        let available = d.count - dataStart
        for (name, value) in json {
            if name == "__metadata__" {
                meta = (value as? [String: String]) ?? [:]
                continue
            }
            guard let t = value as? [String: Any], let dtype = t["dtype"] as? String,
                  let shape = t["shape"] as? [Int], let offs = t["data_offsets"] as? [Int], offs.count == 2 else {
                throw InteropError.file(path, "tensor \(name): expected dtype, shape and data_offsets [begin, end]")
            }
            guard let size = Self.elementSize[dtype] else { throw InteropError.file(path, "tensor \(name): unknown dtype \(dtype)") }
            guard shape.allSatisfy({ $0 >= 0 }), offs[0] >= 0, offs[0] <= offs[1], offs[1] <= available else {
                throw InteropError.file(path, "tensor \(name): data_offsets \(offs) lie outside the \(available) bytes of data")
            }
            let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
            guard count != Int.max, count * size == offs[1] - offs[0] else {
                throw InteropError.file(path, "tensor \(name): shape \(shape) of \(dtype) needs \(count == Int.max ? -1 : count * size) bytes, data_offsets give \(offs[1] - offs[0])")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, begin: offs[0], end: offs[1])
        }
        let sorted = entries.values.sorted { $0.begin < $1.begin }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.end > b.begin {
            throw InteropError.file(path, "tensors \(a.name) and \(b.name) overlap")
        }
        self.entries = entries
        metadata = meta
    }

    /// A tensor as fp32, from F32, F16 or BF16.
    public func floats(_ name: String) throws -> [Float] {
        guard let e = entries[name] else { throw InteropError.file(path, "no tensor \(name)") }
        let start = dataStart + e.begin
        let values = data.withUnsafeBytes { raw -> [Float]? in
            let p = raw.baseAddress! + start
            switch e.dtype {
            case "F32": return (0..<e.count).map { p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian }.map { Float(bitPattern: $0) }
            case "BF16": return (0..<e.count).map { BFloat16.toFloat(p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self).littleEndian) }
            case "F16": return (0..<e.count).map { Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self).littleEndian)) }
            default: return nil
            }
        }
        guard let values else { throw InteropError.file(path, "tensor \(name) is \(e.dtype); expected F32, F16 or BF16") }
        return values
    }

    /// Writes tensors (in the given order) as F32, BF16 or F16.
    public static func write(_ tensors: [(name: String, shape: [Int], values: [Float])], dtype: String = "F32",
                             metadata: [String: String] = ["format": "pt"], to path: String) throws {
        let size = dtype == "F32" ? 4 : 2
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for t in tensors {
            let n = t.values.count * size
            header[t.name] = ["dtype": dtype, "shape": t.shape, "data_offsets": [offset, offset + n]]
            offset += n
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }   // pad the header with spaces to 8-byte alignment
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors {
            switch dtype {
            case "F32": t.values.withUnsafeBytes { out.append(contentsOf: $0) }   // little-endian hosts
            case "BF16": t.values.map { BFloat16.fromFloat($0) }.withUnsafeBytes { out.append(contentsOf: $0) }
            case "F16": t.values.map { Float16($0).bitPattern }.withUnsafeBytes { out.append(contentsOf: $0) }
            default: throw InteropError.file(path, "cannot write dtype \(dtype)")
            }
        }
        try out.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

public enum InteropError: Error, Equatable, CustomStringConvertible {
    case file(String, String)
    public var description: String {
        switch self { case let .file(p, why): return "\(p): \(why)" }
    }
}
