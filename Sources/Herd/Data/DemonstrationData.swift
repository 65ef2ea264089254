import Foundation

/// An SFT job's data, resolved: the tokenizer (named in the manifest, or
/// the one beside the init weights), the demonstrations read and checked
/// line by line, the held-out ones (their own file, or the last
/// val_fraction of the demonstrations), packed.
public struct DemonstrationData {
    public let tokenizer: any Tokenizer
    public let dataset: DemonstrationDataset

    public init(data d: JobManifest.DataSpec, initFrom: String) throws {
        switch d.tokenizer {
        case "byte": tokenizer = ByteTokenizer()
        case "from init", "char":
            // A char vocabulary belongs to the model it was built for.
            guard let t = try TokenizerFile.find(near: initFrom) else {
                throw InteropError.file(initFrom, "no tokenizer.model or tokenizer.json beside the init weights; name one in data.tokenizer")
            }
            tokenizer = t
        default: tokenizer = try TokenizerFile.load(path: d.tokenizer)
        }
        guard let path = d.demonstrations else { throw InteropError.file("data", "no demonstrations") }
        var train = try JSONLines.demonstrations(path: path)
        var heldOut: [Demonstration] = []
        if let h = d.heldOut {
            heldOut = try JSONLines.demonstrations(path: h)
        } else if train.count > 1 && d.validationFraction > 0 {
            let n = max(1, Int(Double(train.count) * d.validationFraction))
            heldOut = Array(train.suffix(n))
            train.removeLast(n)
        }
        do {
            dataset = try DemonstrationDataset(train: train, validation: heldOut, tokenizer: tokenizer, seqLen: d.seqLen)
        } catch {
            throw RecordError(file: path, line: 0, message: "cannot put the demonstrations in the chat format with the \(tokenizer.kind) tokenizer: \(error)")
        }
        guard !dataset.train.isEmpty else {
            throw RecordError(file: path, line: 0, message: "no demonstration with an answer to learn")
        }
    }
}
