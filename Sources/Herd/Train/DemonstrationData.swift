import Foundation

/// An SFT job's data, resolved: the tokenizer (named in the manifest, or
/// the one beside the init weights), the demonstrations read and checked
/// line by line, the held-out ones (their own file, or the last
/// val_fraction of the demonstrations), packed.
public struct DemonstrationData {
    public let tokenizer: any Tokenizer
    public let dataset: DemonstrationDataset

    public init(data d: JobManifest.DataSpec, initFrom: String) throws {
        tokenizer = try TokenizerFile.forFineTuning(named: d.tokenizer, initFrom: initFrom)
        guard let path = d.demonstrations else { throw RecordError(file: "data", line: 0, message: "no demonstrations") }
        let (train, heldOut) = try JSONLines.split(path: path, heldOut: d.heldOut, fraction: d.validationFraction,
                                                   read: JSONLines.demonstrations)
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
