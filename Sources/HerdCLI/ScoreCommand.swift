import ArgumentParser
import Foundation
import Herd

/// `herd score`: the helpfulness and safety rewards of an answer.
struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score an answer to a dialogue with the helpfulness and safety reward models.")
    @Option(help: "The helpfulness reward model (a run or checkpoint directory).") var helpfulness: String?
    @Option(help: "The safety reward model (a run or checkpoint directory).") var safety: String?
    @Option(help: "The user's message (or give --dialogue).") var prompt: String?
    @Option(help: "A JSON file with the dialogue: [{\"role\": ..., \"content\": ...}, ...], ending with the user's turn.") var dialogue: String?
    @Option(help: "The answer to score.") var answer: String

    func run() throws {
        guard helpfulness != nil || safety != nil else { fail(ValidationError("give --helpfulness, --safety or both")) }
        var turns: [ChatMessage]
        if let dialogue {
            guard let data = FileManager.default.contents(atPath: dialogue) else { fail(ValidationError("--dialogue: cannot read \(dialogue)")) }
            do { turns = try JSONDecoder().decode([ChatMessage].self, from: data) } catch {
                fail(ValidationError("--dialogue \(dialogue): expected a JSON list of {role, content}: \(error)"))
            }
        } else if let prompt {
            turns = [ChatMessage(.user, prompt)]
        } else { fail(ValidationError("give --prompt or --dialogue")) }
        turns.append(ChatMessage(.assistant, answer))
        for (label, path) in [("helpfulness", helpfulness), ("safety", safety)] {
            guard let path else { continue }
            do {
                let (model, tokenizer) = try ModelFiles.loadModelAndTokenizer(path, role: "\(label) reward model")
                guard model.config.scalarHead else { fail(ValidationError("--\(label) \(path): not a reward model (it has no scalar head)")) }
                let tokens = try ChatFormat.encode(turns, tokenizer: tokenizer).tokens
                print(String(format: "%@ %.4f", label, model.reward(tokens: tokens)))
            } catch { fail(error) }
        }
    }
}
