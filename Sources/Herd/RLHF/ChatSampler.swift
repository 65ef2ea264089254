import Foundation

/// Answers from a chat policy: each dialogue (ending with the user's turn)
/// in the chat format after the packing separator, as SFT trained it,
/// continued until the end-of-answer token (EOS; ETX for byte- and
/// char-level tokenizers) or a length limit. Batched with the KV cache.
public struct ChatSampler {
    public let model: Llama
    public let tokenizer: any Tokenizer
    let separator: TokenID, endOfAnswer: TokenID
    /// Every answer's tokens and time, for the stage's report of its speed.
    public let meter = GenerationMeter()
    /// On a tensor group: the leader whose followers run every generation
    /// too, and which of its models this is.
    var leader: (TensorGroupLeader, model: Int)?

    public init(model: Llama, tokenizer: any Tokenizer) throws {
        self.model = model
        self.tokenizer = tokenizer
        separator = try DemonstrationDataset.separator(for: tokenizer)
        if let spm = tokenizer as? SentencePieceTokenizer { endOfAnswer = spm.eosID } else {
            endOfAnswer = try tokenizer.encode(ChatFormat.textEOS)[0]
        }
    }

    /// A policy as a sampler: loaded whole here, or split over the tensor
    /// group `leader` drives (its followers load their shards too).
    public static func load(_ path: String, role: String, leader: TensorGroupLeader?) throws -> ChatSampler {
        if let leader { return try leader.chatSampler(path, role: role) }
        let (model, tokenizer) = try ModelFiles.loadModelAndTokenizer(path, role: role)
        return try ChatSampler(model: model, tokenizer: tokenizer)
    }

    /// The prompt tokens of a dialogue, as the policy sees them.
    func promptTokens(_ d: [ChatMessage], maxNewTokens: Int) throws -> [TokenID] {
        let ids = [separator] + (try ChatFormat.encode(d, tokenizer: tokenizer).tokens)
        return Array(ids.suffix(max(1, model.config.maxSeqLen - maxNewTokens)))
    }

    /// The text of generated tokens, without the end-of-answer token.
    func text(_ ids: [TokenID]) -> String {
        let answer = ids.last == endOfAnswer ? Array(ids.dropLast()) : ids
        return tokenizer.decode(answer).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `k` answers to each dialogue, sample j of dialogue i drawn from the
    /// stream seeds(i, j) — the same whatever the batching. The K samples
    /// of a dialogue share its prompt's prefill; `batch` sequences run at once.
    public func samples(_ dialogues: [[ChatMessage]], k: Int, temperature: Double, maxNewTokens: Int,
                        seed: (Int, Int) -> UInt64, batch: Int = 32) throws -> [[String]] {
        var jobs: [(i: Int, j: Int, prompt: [TokenID])] = []
        for (i, d) in dialogues.enumerated() {
            let p = try promptTokens(d, maxNewTokens: maxNewTokens)
            for j in 0..<k { jobs.append((i, j, p)) }
        }
        var out = [[String]](repeating: [String](repeating: "", count: k), count: dialogues.count)
        guard !jobs.isEmpty else { return out }
        let ids = generator(batch: min(batch, jobs.count), prompts: jobs.map(\.prompt), maxNewTokens: maxNewTokens)
            .generate(jobs.map(\.prompt), options: options(temperature, maxNewTokens), seeds: jobs.map { seed($0.i, $0.j) })
        for (job, tokens) in zip(jobs, ids) { out[job.i][job.j] = text(tokens) }
        return out
    }

    /// One answer per dialogue at `temperature`; dialogue i draws from
    /// stream (seed, its group of `batch`, its place in the group).
    public func answers(_ dialogues: [[ChatMessage]], temperature: Double, maxNewTokens: Int, seed: UInt64,
                        batch: Int = 32) throws -> [String] {
        guard !dialogues.isEmpty else { return [] }
        let prompts = try dialogues.map { try promptTokens($0, maxNewTokens: maxNewTokens) }
        let seeds = prompts.indices.map { i in SplitMix64.mix(SplitMix64.mix(seed, UInt64(i - i % batch)), UInt64(i % batch)) }
        return generator(batch: min(batch, prompts.count), prompts: prompts, maxNewTokens: maxNewTokens)
            .generate(prompts, options: options(temperature, maxNewTokens), seeds: seeds).map(text)
    }

    /// A generator for these prompts: its cache as long as the longest
    /// prompt and its answer need (not the model's whole context), metered.
    public func generator(batch: Int, prompts: [[TokenID]], maxNewTokens: Int, threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> Generator {
        let longest = prompts.map(\.count).max() ?? 1
        let g = Generator(model: model, batch: batch, maxLen: longest + maxNewTokens + 1, threads: threads)
        g.meter = meter
        g.leader = leader
        return g
    }

    func options(_ temperature: Double, _ maxNewTokens: Int) -> SamplingOptions {
        SamplingOptions(temperature: temperature, maxNewTokens: maxNewTokens, eos: endOfAnswer)
    }
}
