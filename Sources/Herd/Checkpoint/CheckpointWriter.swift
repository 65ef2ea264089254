import Foundation

/// How a job checkpoints (the manifest's `checkpoint` section).
public struct CheckpointSettings: Sendable, Equatable {
    /// Save every `interval` steps (and at the last step); 0 turns checkpoints off.
    public var interval: Int = 0
    /// Keep the newest `keep` checkpoints...
    public var keep: Int = 3
    /// ...and every step divisible by this one forever.
    public var keepEvery: Int?
    /// zstd level.
    public var level: Int = 3
    public init() {}
}

/// Writes a checkpoint. Collective: every rank of the job calls `save` at
/// the same step. Each rank writes its own file of pieces; rank 0 then
/// writes the manifest and commits the directory.
public enum CheckpointWriter {
    /// Which pieces a rank writes, as (name, global shape, role, piece) —
    /// recorded per rank in `rank-NNNNN.json` and merged by rank 0.
    struct RankRecord: Codable {
        /// nil when this rank had nothing to write (a data-parallel replica without ZeRO-1).
        var file: CheckpointManifest.FileEntry?
        var pieces: [Named]
        struct Named: Codable { var name: String; var globalShape: [Int]; var role: ShardRole; var piece: CheckpointManifest.Piece }
    }

    public struct Result: Sendable { public var directory: String; public var bytes: Int; public var seconds: Double }

    public static func save(step: Int, sequencesConsumed: Int, model: Llama, optimizer: AdamW,
                            context: ParallelContext, job: JobManifest, settings: CheckpointSettings) throws -> Result {
        let start = DispatchTime.now().uptimeNanoseconds
        let store = CheckpointStore(runDirectory: job.output)
        let final = store.path(step: step), tmp = final + ".tmp"
        let world = context.world, rank = world.rank
        if rank == 0 {
            try? FileManager.default.removeItem(atPath: tmp)
            try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        }
        world.barrier()

        // This rank's pieces: weights from data rank 0 (data replicas hold the
        // same); moments from data rank 0, or with ZeRO-1 each rank's own part;
        // a piece several tensor ranks hold identically only from its first copy.
        let fileName = String(format: "rank-%05d.zst", rank)
        let writer = try ZstdFrameWriter(path: (tmp as NSString).appendingPathComponent(fileName),
                                         level: settings.level, threads: 0)
        var named: [RankRecord.Named] = []
        let shard = model.shard
        let sharded = context.zero1 && context.data.size > 1
        for spec in model.layout.specs where shard.rank % spec.copies == 0 {
            func add(_ component: String, _ base: UnsafePointer<Float>, _ lo: Int, _ hi: Int) throws {
                guard lo < hi else { return }
                let (offset, size) = try writer.writeFrame(UnsafeRawPointer(base), byteCount: (hi - lo) * 4)
                named.append(.init(name: spec.name, globalShape: spec.globalShape, role: spec.role, piece: .init(
                    component: component, file: fileName, offset: offset, compressedBytes: size, dtype: "fp32",
                    sliceStart: spec.sliceStart, blockShape: spec.shape, flatStart: lo - spec.offset, count: hi - lo)))
            }
            let lo = spec.offset, hi = spec.offset + spec.count
            if context.rank.dataRank == 0 { try add("param", model.params.base + lo, lo, hi) }
            if sharded || context.rank.dataRank == 0 {
                let r = optimizer.range
                let a = max(lo, r.lowerBound), b = min(hi, r.upperBound)
                if a < b {
                    try add("exp_avg", optimizer.m.base + (a - r.lowerBound), a, b)
                    try add("exp_avg_sq", optimizer.v.base + (a - r.lowerBound), a, b)
                }
            }
        }
        try writer.finish()
        // An empty file is not a zstd file: a rank with nothing to write leaves none.
        if named.isEmpty { try? FileManager.default.removeItem(atPath: (tmp as NSString).appendingPathComponent(fileName)) }
        let record = RankRecord(file: named.isEmpty ? nil : .init(name: fileName, bytes: writer.bytesWritten, fnv1a64: writer.checksum.hex),
                                pieces: named)
        try durableWrite(try JSONEncoder().encode(record),
                         to: (tmp as NSString).appendingPathComponent(String(format: "rank-%05d.json", rank)))
        world.barrier()

        var bytes = 0
        if rank == 0 {
            var tensors: [CheckpointManifest.TensorEntry] = []
            var index: [String: Int] = [:]
            var files: [CheckpointManifest.FileEntry] = []
            for r in 0..<world.size {
                let path = (tmp as NSString).appendingPathComponent(String(format: "rank-%05d.json", r))
                guard let data = FileManager.default.contents(atPath: path),
                      let rec = try? JSONDecoder().decode(RankRecord.self, from: data) else { throw CheckpointError.missing(path) }
                if let f = rec.file {
                    files.append(f)
                    bytes += f.bytes
                }
                for n in rec.pieces {
                    if index[n.name] == nil {
                        index[n.name] = tensors.count
                        tensors.append(.init(name: n.name, globalShape: n.globalShape, role: n.role, pieces: []))
                    }
                    tensors[index[n.name]!].pieces.append(n.piece)
                }
            }
            let manifest = CheckpointManifest(
                job: job.name, step: step, sequencesConsumed: sequencesConsumed, optimizerSteps: optimizer.step,
                seed: job.seed, model: model.config, data: context.data.size, tensor: context.tensor.size,
                zero1: context.zero1, weightDType: "fp32", tensors: tensors, files: files)
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try durableWrite(try enc.encode(manifest), to: (tmp as NSString).appendingPathComponent(CheckpointManifest.fileName))
            try fsyncDirectory(tmp)
            try? FileManager.default.removeItem(atPath: final)
            guard rename(tmp, final) == 0 else { throw CheckpointError.io(final, "rename failed") }
            try fsyncDirectory(store.root)
            try store.setLatest(step)
            store.prune(keep: settings.keep, keepEvery: settings.keepEvery)
        }
        world.barrier()
        return Result(directory: final, bytes: bytes, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
