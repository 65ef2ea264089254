import Foundation

/// Answers from a chat policy: each dialogue (ending with the user's turn)
/// in the chat format after the packing separator, as SFT trained it,
/// continued until the end-of-answer token (EOS; ETX for byte- and
/// char-level tokenizers) or a length limit. Batched with the KV cache.
public struct ChatSampler {
    public let model: Llama
    public let tokenizer: any Tokenizer
    let separator: TokenID, endOfAnswer: TokenID

    public init(model: Llama, tokenizer: any Tokenizer) throws {
        self.model = model
        self.tokenizer = tokenizer
        separator = try DemonstrationDataset.separator(for: tokenizer)
        if let spm = tokenizer as? SentencePieceTokenizer { endOfAnswer = spm.eosID } else {
            endOfAnswer = try tokenizer.encode(ChatFormat.textEOS)[0]
        }
    }

    /// One answer per dialogue at `temperature`; sequence i draws from stream (seed, i).
    public func answers(_ dialogues: [[ChatMessage]], temperature: Double, maxNewTokens: Int, seed: UInt64,
                        batch: Int = 32) throws -> [String] {
        var prompts: [[TokenID]] = []
        for d in dialogues {
            let ids = [separator] + (try ChatFormat.encode(d, tokenizer: tokenizer).tokens)
            prompts.append(Array(ids.suffix(max(1, model.config.maxSeqLen - maxNewTokens))))
        }
        var out: [String] = []
        var start = 0
        while start < prompts.count {
            let part = Array(prompts[start..<min(start + batch, prompts.count)])
            let g = Generator(model: model, batch: part.count)
            let options = SamplingOptions(temperature: temperature, seed: SplitMix64.mix(seed, UInt64(start)),
                                          maxNewTokens: maxNewTokens, eos: endOfAnswer)
            for ids in g.generate(part, options: options) {
                let answer = ids.last == endOfAnswer ? Array(ids.dropLast()) : ids
                out.append(tokenizer.decode(answer).trimmingCharacters(in: .whitespacesAndNewlines))
            }
            start += part.count
        }
        return out
    }
}
