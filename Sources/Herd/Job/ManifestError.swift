/// A manifest that cannot run, with the file, the field (dotted path) and
/// what was expected — raised before any training starts.
public struct ManifestError: Error, Equatable, CustomStringConvertible {
    public var file: String
    public var field: String
    public var message: String

    public init(file: String, field: String, message: String) {
        self.file = file; self.field = field; self.message = message
    }

    public var description: String { field.isEmpty ? "\(file): \(message)" : "\(file): \(field): \(message)" }
}
