import Foundation

/// Moving whole models between Herd checkpoints, Hugging Face directories
/// and a `Llama` in memory.
public enum ModelFiles {
    /// The checkpoint a path names: a checkpoint directory, or a run
    /// directory (its LATEST).
    public static func checkpointDirectory(_ path: String) throws -> String {
        if FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(CheckpointManifest.fileName)) { return path }
        let store = CheckpointStore(runDirectory: path)
        if let latest = store.latest() { return store.path(step: latest) }
        throw CheckpointError.none(path)
    }

    /// A model and the tokenizer beside it (a run's, a checkpoint's, or a
    /// Hugging Face directory's); `role` names it in the error.
    public static func loadModelAndTokenizer(_ path: String, role: String, placement: ModelPlacement = ModelPlacement()) throws -> (Llama, any Tokenizer) {
        let model = try loadModel(path, placement: placement)
        guard let t = try TokenizerFile.find(near: isHuggingFace(path) ? path : checkpointDirectory(path)) else {
            throw InteropError.file(path, "no tokenizer beside the \(role)")
        }
        return (model, t)
    }

    /// The model shape of a Herd checkpoint, run directory or Hugging Face directory.
    public static func config(_ path: String) throws -> LlamaConfig {
        if isHuggingFace(path) { return try HuggingFace.readConfig(dir: path) }
        return try CheckpointManifest.read(dir: checkpointDirectory(path)).model
    }

    public static func isHuggingFace(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("config.json"))
    }

    /// Every weight of a Herd checkpoint as whole tensors, by Meta name.
    public static func weights(checkpoint dir: String) throws -> (config: LlamaConfig, tensors: [String: [Float]]) {
        let m = try CheckpointManifest.read(dir: dir)
        try m.verify(dir: dir)
        var out: [String: [Float]] = [:]
        for t in m.tensors { out[t.name] = try CheckpointLoader.assemble(t, component: "param", dir: dir) }
        return (m.model, out)
    }

    /// A model from a Herd checkpoint, a run directory or a Hugging Face
    /// directory: whole in this process, or laid out across ranks as
    /// `placement` says (this rank's tensor shard, its ZeRO-3 part).
    public static func loadModel(_ path: String, placement p: ModelPlacement = ModelPlacement()) throws -> Llama {
        let (config, tensors) = isHuggingFace(path) ? try HuggingFace.load(dir: path) : try weights(checkpoint: checkpointDirectory(path))
        let model: Llama
        do {
            model = try Llama(config: config, shard: try TensorShard.make(config, rank: p.tensor.rank, size: p.tensor.size), tensorGroup: p.tensor,
                              zero: p.zero, dataGroup: p.data, sequenceParallel: p.sequenceParallel, precision: p.precision, trains: p.trains)
        } catch { throw InteropError.file(path, "cannot be laid out over \(p.tensor.size) tensor rank(s): \(error.field) \(error.message)") }
        try model.setWeights(tensors)
        return model
    }

    /// `herd import`: a Hugging Face model as a Herd run directory whose
    /// step-0 checkpoint a training job (output: that directory) continues from.
    public static func importHuggingFace(dir: String, runDirectory: String) throws -> String {
        let model = try loadModel(dir)
        let context = ParallelContext.single(model: model.config, sequences: 1, threads: 1)
        let optimizer = AdamW(config: AdamWConfig(), layout: model.layout)
        let saved = try CheckpointWriter.save(step: 0, sequencesConsumed: 0, model: model, optimizer: optimizer, context: context,
                                              job: StandaloneRun(output: runDirectory, name: (dir as NSString).lastPathComponent),
                                              settings: CheckpointSettings())
        for extra in ["tokenizer.model"] {
            let src = (dir as NSString).appendingPathComponent(extra)
            if FileManager.default.fileExists(atPath: src) {
                let dst = (runDirectory as NSString).appendingPathComponent(extra)
                try? FileManager.default.removeItem(atPath: dst)
                try FileManager.default.copyItem(atPath: src, toPath: dst)
            }
        }
        return saved.directory
    }

    /// `herd export`: a Herd checkpoint as a Hugging Face directory.
    public static func exportHuggingFace(checkpoint path: String, to out: String, dtype: String) throws {
        let dir = try checkpointDirectory(path)
        let (config, tensors) = try weights(checkpoint: dir)
        try HuggingFace.save(config: config, tensors: tensors, dtype: dtype, to: out)
        // The tokenizer travels with the model when the run has one.
        let run = ((dir as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        for candidate in [(dir as NSString).appendingPathComponent("tokenizer.model"), (run as NSString).appendingPathComponent("tokenizer.model")]
        where FileManager.default.fileExists(atPath: candidate) {
            let dst = (out as NSString).appendingPathComponent("tokenizer.model")
            try? FileManager.default.removeItem(atPath: dst)
            try FileManager.default.copyItem(atPath: candidate, toPath: dst)
            break
        }
    }
}

/// How a loaded model is laid out across ranks: split over a tensor group,
/// its weights sharded over the data ranks (ZeRO-3), sequence parallelism,
/// precision, and whether it trains.
public struct ModelPlacement {
    public var tensor: Communicator
    public var data: Communicator
    public var zero: Int
    public var sequenceParallel: Bool
    public var precision: Precision
    public var trains: Bool

    public init(tensor: Communicator = SingleProcessCommunicator(), data: Communicator = SingleProcessCommunicator(), zero: Int = 0,
                sequenceParallel: Bool = false, precision: Precision = .fp32, trains: Bool = true) {
        self.tensor = tensor; self.data = data; self.zero = zero
        self.sequenceParallel = sequenceParallel; self.precision = precision; self.trains = trains
    }

    /// A frozen model beside trained ones placed so: the same tensor shard
    /// and precision, its weights sharded only at ZeRO-3 (it has no
    /// gradients or moments to shard), the stream never split by rows.
    public var frozen: ModelPlacement {
        ModelPlacement(tensor: tensor, data: data, zero: zero >= 3 ? 3 : 0, precision: precision, trains: false)
    }
}

extension Llama {
    /// Fills this rank's piece of every weight from whole tensors (Meta names).
    public func setWeights(_ tensors: [String: [Float]]) throws {
        for spec in layout.specs {
            guard let whole = tensors[spec.name], whole.count == spec.globalShape.reduce(1, *) else {
                throw CheckpointError.incompatible("no weights of shape \(spec.globalShape) for \(spec.name)")
            }
            try CheckpointLoader.cut(whole, spec: spec, into: params.base, range: spec.offset..<(spec.offset + spec.count),
                                     label: spec.name, dir: "weights")
            shards?.keepOwnedPart(of: spec.offset..<(spec.offset + spec.count))
        }
    }
}
