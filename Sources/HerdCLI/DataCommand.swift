import ArgumentParser
import Foundation
import Herd

/// `herd data prepare`.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Prepare corpora.", subcommands: [Prepare.self])

    struct Prepare: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tokenize a corpus into token shards (OUT/train, OUT/validation, OUT/tokenizer.json) that a job reads with data.shards.")
        @Option(help: "A text file or a directory of text files.") var corpus: String
        @Option(help: "char or byte.") var tokenizer: String
        @Option(help: "The directory to write.") var out: String
        @Option(help: "Tokens per shard.") var shardTokens = 1 << 24
        @Option(help: "The last fraction of the tokens, held out.") var valFraction = 0.1

        func run() throws {
            guard ["char", "byte"].contains(tokenizer) else { fail(ValidationError("--tokenizer: expected char or byte, got \(tokenizer)")) }
            do {
                let (train, validation) = try ShardDataset.prepare(corpus: corpus, tokenizer: tokenizer, out: out,
                                                                   shardTokens: shardTokens, validationFraction: valFraction)
                print("\(out): \(train.tokenCount) training tokens in \(train.shards.count) shard(s), \(validation.tokenCount) held out in \(validation.shards.count); vocabulary \(train.vocabSize)")
            } catch { fail(error) }
        }
    }
}
