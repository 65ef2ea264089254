import Foundation

/// How a job checkpoints (the manifest's `checkpoint` section).
public struct CheckpointSettings: Sendable, Codable, Equatable {
    /// Save every `interval` steps (and at the last step); 0 turns checkpoints off.
    public var interval: Int = 0
    /// Keep the newest `keep` checkpoints...
    public var keep: Int = 3
    /// ...and every step divisible by this one forever.
    public var keepEvery: Int?
    /// zstd level. fp32 weights and moments barely compress (about 1.08 at
    /// level 3), so the default is the fastest level: an asynchronous save
    /// competes for the cores training uses.
    public var level: Int = 1
    /// Write in the background while training goes on.
    public var async: Bool = true
    /// "bf16" adds a bf16 copy of the weights (for inference and export, half
    /// the size); the fp32 master weights and moments are always written, so
    /// resuming stays exact.
    public var weightDType: String = "fp32"
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

    /// What one rank writes: views of its flat buffers (the live ones for a
    /// synchronous save, a snapshot of them for an asynchronous one).
    struct Sources: @unchecked Sendable {
        var params: UnsafePointer<Float>      // indexed like model.params over paramRange
        /// The weights this rank writes: all (data rank 0), none (its
        /// replicas), or under ZeRO-3 its own part.
        var paramRange: Range<Int>
        var m: UnsafePointer<Float>           // indexed like the flat buffer over optimizer.range
        var v: UnsafePointer<Float>
        var range: Range<Int>
        var specs: [ParameterSpec]
        var tensorRank: Int
        var writesParams: Bool
        var writesMoments: Bool
        var bf16Weights: Bool = false
    }

    static func sources(model: Llama, optimizer: AdamW, context: ParallelContext) -> Sources {
        let r = optimizer.range
        if let shards = model.shards, let weights = shards.weights {
            return Sources(params: weights.base - shards.owned.lowerBound, paramRange: shards.owned,
                           m: optimizer.m.base - r.lowerBound, v: optimizer.v.base - r.lowerBound,
                           range: r, specs: model.layout.specs, tensorRank: model.shard.rank,
                           writesParams: true, writesMoments: true)
        }
        let first = context.rank.dataRank == 0
        return Sources(params: model.params.base, paramRange: first ? 0..<model.layout.total : 0..<0,
                       m: optimizer.m.base - r.lowerBound, v: optimizer.v.base - r.lowerBound,
                       range: r, specs: model.layout.specs, tensorRank: model.shard.rank,
                       writesParams: first, writesMoments: context.shardsOptimizer || first)
    }

    static func temporaryDirectory(_ job: any RunIdentity, step: Int) -> String {
        CheckpointStore(runDirectory: job.output).path(step: step) + ".tmp"
    }

    /// Collective: rank 0 makes a fresh temporary directory for `step`, and
    /// the ranks learn what the checkpoint needs on disk (for the message if
    /// it finds no space): the size of the previous complete checkpoint,
    /// or without one the uncompressed bytes every rank writes (`writes` is
    /// this rank's).
    static func prepare(step: Int, job: any RunIdentity, world: Communicator, writes: Int) throws -> CheckpointSpace.Need {
        let store = CheckpointStore(runDirectory: job.output)
        let tmp = temporaryDirectory(job, step: step)
        var failure: Error?
        // Summed over the ranks: rank 0's failure code, previous checkpoint's bytes and step + 1; every rank's bytes.
        var sums: [Double] = [0, 0, 0, Double(writes)]
        if world.rank == 0 {
            try? FileManager.default.removeItem(atPath: tmp)
            do {
                try FileManager.default.createDirectory(atPath: store.root, withIntermediateDirectories: true)
                guard mkdir(tmp, 0o755) == 0 else { throw CheckpointSpace.error(tmp, "create", errno: errno) }
            } catch { failure = error }
            if let previous = store.latestSize() { sums[1] = Double(previous.bytes); sums[2] = Double(previous.step + 1) }
            sums[0] = CheckpointSpace.code(failure)
        }
        world.allReduce(&sums, count: sums.count, op: .sum)
        let need = sums[2] > 0 ? CheckpointSpace.Need(bytes: Int(sums[1]), estimate: .previousCheckpoint(step: Int(sums[2]) - 1))
                               : CheckpointSpace.Need(bytes: Int(sums[3]), estimate: .uncompressed)
        try CheckpointSpace.settle(world, failure, worst: sums[0], step: step, need: need, job: job)
        return need
    }

    /// The bytes `writeRankPart` compresses for these sources (before zstd).
    static func uncompressedBytes(_ src: Sources) -> Int {
        var total = 0
        for spec in src.specs where src.tensorRank % spec.copies == 0 {
            let lo = spec.offset, hi = spec.offset + spec.count
            let params = max(0, min(hi, src.paramRange.upperBound) - max(lo, src.paramRange.lowerBound))
            if src.writesParams { total += params * (src.bf16Weights ? 6 : 4) }
            if src.writesMoments { total += 2 * 4 * max(0, min(hi, src.range.upperBound) - max(lo, src.range.lowerBound)) }
        }
        return total
    }

    /// This rank's file and record. No communication: safe on a background thread.
    /// Weights come from data rank 0 (data replicas hold the same); moments
    /// from data rank 0, or with ZeRO-1 each rank's own part; a piece several
    /// tensor ranks hold identically only from its first copy.
    static func writeRankPart(_ src: Sources, dir tmp: String, rank: Int, level: Int) throws {
        let fileName = String(format: "rank-%05d.zst", rank)
        let filePath = (tmp as NSString).appendingPathComponent(fileName)
        let writer = try ZstdFrameWriter(path: filePath, level: level, threads: 0)
        var named: [RankRecord.Named] = []
        for spec in src.specs where src.tensorRank % spec.copies == 0 {
            func add(_ component: String, _ base: UnsafePointer<Float>, _ lo: Int, _ hi: Int) throws {
                guard lo < hi else { return }
                let (offset, size) = try writer.writeFrame(UnsafeRawPointer(base + lo), byteCount: (hi - lo) * 4)
                named.append(.init(name: spec.name, globalShape: spec.globalShape, role: spec.role, piece: .init(
                    component: component, file: fileName, offset: offset, compressedBytes: size, dtype: "fp32",
                    sliceStart: spec.sliceStart, blockShape: spec.shape, flatStart: lo - spec.offset, count: hi - lo)))
            }
            let lo = spec.offset, hi = spec.offset + spec.count
            let pLo = max(lo, src.paramRange.lowerBound), pHi = min(hi, src.paramRange.upperBound)
            if src.writesParams { try add("param", src.params, pLo, pHi) }
            if src.writesParams && src.bf16Weights && pLo < pHi {
                // Round to nearest even; one tensor piece converted at a time.
                var half = [UInt16](repeating: 0, count: pHi - pLo)
                for i in 0..<(pHi - pLo) { half[i] = BFloat16.fromFloat(src.params[pLo + i]) }
                let (offset, size) = try half.withUnsafeBytes { try writer.writeFrame($0.baseAddress!, byteCount: $0.count) }
                named.append(.init(name: spec.name, globalShape: spec.globalShape, role: spec.role, piece: .init(
                    component: "weight", file: fileName, offset: offset, compressedBytes: size, dtype: "bf16",
                    sliceStart: spec.sliceStart, blockShape: spec.shape, flatStart: pLo - lo, count: pHi - pLo)))
            }
            if src.writesMoments {
                let a = max(lo, src.range.lowerBound), b = min(hi, src.range.upperBound)
                try add("exp_avg", src.m, a, b)
                try add("exp_avg_sq", src.v, a, b)
            }
        }
        try writer.finish()
        // An empty file is not a zstd file: a rank with nothing to write leaves none.
        if named.isEmpty { try? FileManager.default.removeItem(atPath: filePath) }
        let record = RankRecord(file: named.isEmpty ? nil : .init(name: fileName, bytes: writer.bytesWritten, checksum: writer.checksum.hex),
                                pieces: named)
        try durableWrite(try JSONEncoder().encode(record),
                         to: (tmp as NSString).appendingPathComponent(String(format: "rank-%05d.json", rank)))
    }

    /// Rank 0, once every rank's part is on disk: the manifest, then the
    /// directory renamed into place, then LATEST, then retention. Returns bytes written.
    static func commit(step: Int, sequencesConsumed: Int, optimizerSteps: Int, model: LlamaConfig,
                       context: ParallelContext, job: any RunIdentity, settings: CheckpointSettings) throws -> Int {
        let store = CheckpointStore(runDirectory: job.output)
        let final = store.path(step: step), tmp = final + ".tmp"
        var tensors: [CheckpointManifest.TensorEntry] = []
        var index: [String: Int] = [:]
        var files: [CheckpointManifest.FileEntry] = []
        var bytes = 0
        for r in 0..<context.world.size {
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
            job: job.name, step: step, sequencesConsumed: sequencesConsumed, optimizerSteps: optimizerSteps,
            seed: job.seed, model: model, data: context.data.size, tensor: context.tensor.size,
            zero1: context.shardsOptimizer, zero: context.zero, weightDType: settings.weightDType, tensors: tensors, files: files)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try durableWrite(try enc.encode(manifest), to: (tmp as NSString).appendingPathComponent(CheckpointManifest.fileName))
        try fsyncDirectory(tmp)
        try? FileManager.default.removeItem(atPath: final)
        guard rename(tmp, final) == 0 else { throw CheckpointSpace.error(final, "rename", errno: errno) }
        try fsyncDirectory(store.root)
        try store.setLatest(step)
        store.prune(keep: settings.keep, keepEvery: settings.keepEvery)
        return bytes
    }

    /// A synchronous save. Collective: every rank calls it at the same step.
    /// A failure on any rank (its part, or rank 0's commit) is thrown on
    /// every rank, after the ranks agree on it (`CheckpointSpace.agree`).
    public static func save(step: Int, sequencesConsumed: Int, model: Llama, optimizer: AdamW,
                            context: ParallelContext, job: any RunIdentity, settings: CheckpointSettings) throws -> Result {
        let start = DispatchTime.now().uptimeNanoseconds
        var src = sources(model: model, optimizer: optimizer, context: context)
        src.bf16Weights = settings.weightDType == "bf16"
        let need = try prepare(step: step, job: job, world: context.world, writes: uncompressedBytes(src))
        var failure: Error?
        do { try writeRankPart(src, dir: temporaryDirectory(job, step: step), rank: context.world.rank, level: settings.level) } catch { failure = error }
        try CheckpointSpace.agree(context.world, failure, step: step, need: need, job: job)
        var bytes = 0
        if context.isLeader {
            do {
                bytes = try commit(step: step, sequencesConsumed: sequencesConsumed, optimizerSteps: optimizer.step,
                                   model: model.config, context: context, job: job, settings: settings)
            } catch { failure = error }
        }
        try CheckpointSpace.agree(context.world, failure, step: step, need: need, job: job)
        return Result(directory: CheckpointStore(runDirectory: job.output).path(step: step), bytes: bytes,
                      seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
