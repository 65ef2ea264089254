import Foundation

/// A generation stage (annotation, evaluation, Ghost Attention) on a
/// tensor group: its first rank runs the stage — files, the annotator,
/// every decision — and each model it loads and each generation it runs,
/// the other ranks load and run too, in step, holding their shards. They
/// have no work of their own, so they follow commands broadcast over the
/// group: load a model, generate (the prompts, options and streams exactly,
/// so every rank samples the same tokens from the same gathered logits), stop.
public final class TensorGroupLeader {
    public let group: Communicator
    private var models: [String] = []

    enum Command: Float { case stop = 0, load = 1, generate = 2 }

    public init(group: Communicator) { self.group = group }

    /// Loads `path` here and on every follower (this rank's shard of it), as a sampler that leads them.
    public func chatSampler(_ path: String, role: String) throws -> ChatSampler {
        _ = group.broadcast([Command.load.rawValue] + Array(path.utf8).map(Float.init), root: 0)
        let (model, tokenizer) = try ModelFiles.loadModelAndTokenizer(path, role: role, placement: ModelPlacement(tensor: group, trains: false))
        models.append(path)
        var sampler = try ChatSampler(model: model, tokenizer: tokenizer)
        sampler.leader = (self, models.count - 1)
        return sampler
    }

    /// Before the leader's generator runs: the same generation on every follower.
    func announce(model: Int, batch: Int, maxLen: Int, prompts: [[TokenID]], options o: SamplingOptions, seeds: [UInt64]?) {
        var m: [Float] = [Command.generate.rawValue, Float(model), Float(batch), Float(maxLen), Float(o.maxNewTokens), Float(o.eos.map { Int($0) } ?? -1)]
        m += Self.words(o.temperature.bitPattern) + Self.words(o.topP.bitPattern) + Self.words(o.seed)
        m.append(Float(prompts.count))
        for p in prompts { m.append(Float(p.count)); m += p.map(Float.init) }
        m.append(seeds == nil ? 0 : 1)
        for s in seeds ?? [] { m += Self.words(s) }
        _ = group.broadcast(m, root: 0)
    }

    /// The followers leave their loop.
    public func release() { _ = group.broadcast([Command.stop.rawValue], root: 0) }

    /// Every rank but the group's first: loads and generates as told until released.
    public static func follow(group: Communicator, threads: Int) throws {
        var models: [Llama] = []
        while true {
            let m = group.broadcast([], root: 0)
            switch Command(rawValue: m[0]) {
            case .stop, nil: return
            case .load:
                let path = String(decoding: m.dropFirst().map { UInt8($0) }, as: UTF8.self)
                models.append(try ModelFiles.loadModel(path, placement: ModelPlacement(tensor: group, trains: false)))
            case .generate:
                var i = 6
                func word() -> UInt64 { defer { i += 4 }; return (0..<4).reduce(0) { $0 | UInt64(m[i + $1]) << (16 * UInt64($1)) } }
                let o = SamplingOptions(temperature: Double(bitPattern: word()), topP: Double(bitPattern: word()), seed: word(),
                                        maxNewTokens: Int(m[4]), eos: m[5] < 0 ? nil : TokenID(m[5]))
                var prompts: [[TokenID]] = []
                let n = Int(m[i]); i += 1
                for _ in 0..<n {
                    let len = Int(m[i])
                    prompts.append(m[(i + 1)..<(i + 1 + len)].map { TokenID($0) })
                    i += 1 + len
                }
                let hasSeeds = m[i] != 0; i += 1
                let seeds = hasSeeds ? (0..<n).map { _ in word() } : nil
                let g = Generator(model: models[Int(m[1])], batch: Int(m[2]), maxLen: Int(m[3]), threads: threads)
                _ = g.generate(prompts, options: o, seeds: seeds)
            }
        }
    }

    /// A 64-bit word as four 16-bit floats (exact).
    static func words(_ x: UInt64) -> [Float] { (0..<4).map { Float((x >> (16 * UInt64($0))) & 0xFFFF) } }
}
