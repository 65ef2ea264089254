import Foundation

/// `manifest.json` of a checkpoint directory: what a job needs to continue
/// exactly (step, sequences consumed, AdamW's step count), the layout it was
/// written at, and for every tensor its global shape and where each written
/// piece of it lies — so that any (data, tensor) layout can cut what it needs.
public struct CheckpointManifest: Codable, Sendable, Equatable {
    public static let fileName = "manifest.json"
    public var version = 1
    public var job: String
    public var step: Int
    /// Global sequence counter: the data position (layout-independent).
    public var sequencesConsumed: Int
    public var optimizerSteps: Int
    public var seed: UInt64
    public var model: LlamaConfig
    public var data: Int
    public var tensor: Int
    /// Whether the AdamW moments were written by each data rank for its own
    /// part (any ZeRO stage over several data ranks); the loader does not care.
    public var zero1: Bool
    /// The ZeRO stage the job ran at (nil in checkpoints written before stages).
    public var zero: Int?
    public var stage: Int { zero ?? (zero1 ? 1 : 0) }
    public var weightDType: String
    public var tensors: [TensorEntry]
    public var files: [FileEntry]

    public struct TensorEntry: Codable, Sendable, Equatable {
        public var name: String
        public var globalShape: [Int]
        /// How the layout splits it: "replicated", "column", "row", "vocab".
        public var role: ShardRole
        public var pieces: [Piece]
    }

    /// One frame: elements [flatStart, flatStart + count) (row-major) of the
    /// block of the global tensor that starts at `sliceStart` along the split
    /// axis and has shape `blockShape`.
    public struct Piece: Codable, Sendable, Equatable {
        /// "param" (the fp32 master weights), "exp_avg", "exp_avg_sq" (AdamW moments).
        public var component: String
        public var file: String
        public var offset: Int
        public var compressedBytes: Int
        public var dtype: String
        public var sliceStart: Int
        public var blockShape: [Int]
        public var flatStart: Int
        public var count: Int
        /// Uncompressed size of the frame.
        public var byteCount: Int { count * (dtype == "bf16" ? 2 : 4) }
    }

    public struct FileEntry: Codable, Sendable, Equatable {
        public var name: String
        public var bytes: Int
        /// Checksum64 of the file's bytes, hex.
        public var checksum: String
    }

    public static func read(dir: String) throws -> CheckpointManifest {
        let path = (dir as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path) else { throw CheckpointError.missing(path) }
        do { return try JSONDecoder().decode(CheckpointManifest.self, from: data) } catch {
            throw CheckpointError.corrupt(path, "the manifest does not parse: \(error)")
        }
    }

    /// Every file present, of the size and checksum recorded. Throws naming
    /// the first bad file.
    public func verify(dir: String) throws {
        for f in files {
            let path = (dir as NSString).appendingPathComponent(f.name)
            guard let attrs = try? FileManager.default.attributesOfItem(atPath: path) else { throw CheckpointError.missing(path) }
            let size = (attrs[.size] as? NSNumber)?.intValue ?? -1
            guard size == f.bytes else { throw CheckpointError.corrupt(path, "\(size) bytes, the manifest records \(f.bytes)") }
            guard let sum = Checksum64.ofFile(path)?.hex else { throw CheckpointError.missing(path) }
            guard sum == f.checksum else { throw CheckpointError.corrupt(path, "checksum \(sum), the manifest records \(f.checksum)") }
        }
    }
}
