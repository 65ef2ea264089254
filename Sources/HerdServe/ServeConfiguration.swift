import Foundation
import Herd

/// Why `herd serve` will not start: each says what to change.
public enum ServeError: Error, CustomStringConvertible, Sendable, Equatable {
    case tokenRequired(host: String)
    case tokenFileUnreadable(path: String, reason: String)
    case tokenTooShort(source: String, length: Int)
    case badPort(Int)
    case badBodyLimit(Int)

    public var description: String {
        switch self {
        case .tokenRequired(let host):
            return "--host \(host) is not a loopback address: herd serve refuses to listen there without a token "
                + "(give --token-file FILE or set HERD_TOKEN; clients send it as 'Authorization: Bearer TOKEN')"
        case let .tokenFileUnreadable(path, reason): return "--token-file \(path): cannot read it (\(reason))"
        case let .tokenTooShort(source, length):
            return "\(source): the token has \(length) characters; use at least \(ServeConfiguration.minimumTokenLength) (e.g. openssl rand -hex 24)"
        case .badPort(let p): return "--port: expected 0 (any free port) to 65535, got \(p)"
        case .badBodyLimit(let n): return "--max-body-bytes: expected at least 1024, got \(n)"
        }
    }
}

/// What `herd serve` was asked for, checked before anything listens.
public struct ServeConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Required from every request when set; required to be set off loopback.
    public var token: String?
    /// Request bodies larger than this are refused (413) before they are read whole.
    public var maxBodyBytes: Int
    /// Pipeline manifests whose iteration graphs the server shows.
    public var pipelines: [String]
    public var storeHome: String
    /// Relative paths in manifests submitted over HTTP are taken from here.
    public var directory: String

    public static let minimumTokenLength = 16
    public static let defaultPort = 8470

    public init(host: String = "127.0.0.1", port: Int = ServeConfiguration.defaultPort, token: String? = nil,
                maxBodyBytes: Int = 1 << 20, pipelines: [String] = [], storeHome: String = JobStore.defaultHome,
                directory: String = FileManager.default.currentDirectoryPath) {
        self.host = host; self.port = port; self.token = token; self.maxBodyBytes = maxBodyBytes
        self.pipelines = pipelines; self.storeHome = storeHome; self.directory = directory
    }

    /// Loopback: 127.0.0.0/8, ::1 and localhost. Anything else is reachable from the network.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" || h == "::1" || h == "[::1]" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// The token from --token-file, else from HERD_TOKEN (nil when neither is given).
    public static func token(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        let (text, source): (String, String)
        if let file {
            do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
                throw ServeError.tokenFileUnreadable(path: file, reason: (error as NSError).localizedDescription)
            }
            source = "--token-file \(file)"
        } else if let env = environment["HERD_TOKEN"] {
            (text, source) = (env, "HERD_TOKEN")
        } else {
            return nil
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.count >= minimumTokenLength else { throw ServeError.tokenTooShort(source: source, length: token.count) }
        return token
    }

    public func validate() throws {
        guard (0...65535).contains(port) else { throw ServeError.badPort(port) }
        guard maxBodyBytes >= 1024 else { throw ServeError.badBodyLimit(maxBodyBytes) }
        if token == nil && !Self.isLoopback(host) { throw ServeError.tokenRequired(host: host) }
    }
}
