import Foundation
import Herd

/// Why `herd serve` will not start: each says what to change.
public enum ServeError: Error, CustomStringConvertible, Sendable, Equatable {
    case tokenRequired(host: String)
    case tokenFileUnreadable(path: String, reason: String)
    case tokenTooShort(source: String, length: Int)
    case badPort(Int)
    case badBodyLimit(Int)
    /// Off loopback without TLS and without --insecure-http.
    case cleartextOffLoopback(host: String)
    /// One of --tls-cert and --tls-key without the other.
    case tlsFlagMissing(given: String, missing: String)
    /// A --tls-cert or --tls-key file that is missing, unreadable or not what it must be.
    case tlsFile(flag: String, path: String, problem: String)
    /// A key and a certificate that are each well formed but do not belong together.
    case tlsMismatch(certificate: String, key: String, reason: String)
    case insecureWithTLS
    case badTimeout(flag: String, value: Double)
    case badMaxConnections(Int)

    public var description: String {
        switch self {
        case .tokenRequired(let host):
            return "--host \(host) is not a loopback address: herd serve refuses to listen there without a token "
                + "(give --token-file FILE or set HERD_TOKEN; clients send it as 'Authorization: Bearer TOKEN'), "
                + "and without TLS (--tls-cert CERT.pem --tls-key KEY.pem) or --insecure-http"
        case let .tokenFileUnreadable(path, reason): return "--token-file \(path): cannot read it (\(reason))"
        case let .tokenTooShort(source, length):
            return "\(source): the token has \(length) characters; use at least \(ServeConfiguration.minimumTokenLength) (e.g. openssl rand -hex 24)"
        case .badPort(let p): return "--port: expected 0 (any free port) to 65535, got \(p)"
        case .badBodyLimit(let n): return "--max-body-bytes: expected at least 1024, got \(n)"
        case .cleartextOffLoopback(let host):
            return "--host \(host) is not a loopback address: herd serve refuses to send the token and the API in cleartext there; "
                + "add --tls-cert CERT.pem --tls-key KEY.pem (HTTPS), or --insecure-http if a TLS proxy in front of it or a trusted network protects the traffic"
        case let .tlsFlagMissing(given, missing):
            return "\(given) given without \(missing): HTTPS needs both (--tls-cert: the PEM certificate chain, --tls-key: its PEM private key)"
        case let .tlsFile(flag, path, problem): return "\(flag) \(path): \(problem)"
        case let .tlsMismatch(certificate, key, reason):
            return "--tls-key \(key) does not belong to the certificate in --tls-cert \(certificate) (the TLS library: \(reason)); "
                + "expected the private key the certificate was made for"
        case .insecureWithTLS:
            return "--insecure-http and --tls-cert/--tls-key together: choose one (with TLS, cleartext is never served)"
        case let .badTimeout(flag, value):
            return "\(flag): expected a number of seconds above 0 and at most 86400, got \(value)"
        case .badMaxConnections(let n): return "--max-connections: expected 1 to 65536, got \(n)"
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

    /// PEM certificate chain and private key (--tls-cert, --tls-key): HTTPS when both are set.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// --insecure-http: cleartext HTTP off loopback, on the user's word that something else protects it.
    public var insecureHTTP: Bool
    /// Seconds a request head has to arrive in whole, from the connection's
    /// start or from the first byte of a keep-alive connection's next request.
    public var readTimeout: Double
    /// Seconds a keep-alive connection may sit between requests.
    public var idleTimeout: Double
    /// Connections open at once; beyond it new ones wait in the kernel's backlog.
    public var maxConnections: Int
    public static let minimumTokenLength = 16
    public static let defaultPort = 8470
    public static let defaultReadTimeout = 10.0
    public static let defaultIdleTimeout = 60.0
    public static let defaultMaxConnections = 256

    public init(host: String = "127.0.0.1", port: Int = ServeConfiguration.defaultPort, token: String? = nil,
                maxBodyBytes: Int = 1 << 20, pipelines: [String] = [], storeHome: String = JobStore.defaultHome,
                directory: String = FileManager.default.currentDirectoryPath,
                tlsCertificate: String? = nil, tlsKey: String? = nil, insecureHTTP: Bool = false,
                readTimeout: Double = ServeConfiguration.defaultReadTimeout,
                idleTimeout: Double = ServeConfiguration.defaultIdleTimeout,
                maxConnections: Int = ServeConfiguration.defaultMaxConnections) {
        self.host = host; self.port = port; self.token = token; self.maxBodyBytes = maxBodyBytes
        self.pipelines = pipelines; self.storeHome = storeHome; self.directory = directory
        self.tlsCertificate = tlsCertificate; self.tlsKey = tlsKey; self.insecureHTTP = insecureHTTP
        self.readTimeout = readTimeout; self.idleTimeout = idleTimeout; self.maxConnections = maxConnections
    }

    /// Both TLS files given (validate refuses one without the other).
    public var isTLS: Bool { tlsCertificate != nil && tlsKey != nil }
    public var scheme: String { isTLS ? "https" : "http" }

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

    /// Everything checked before anything listens; the TLS files are read
    /// and parsed here (ServeTLS), so a bad one stops the start, not the
    /// first handshake.
    public func validate() throws {
        guard (0...65535).contains(port) else { throw ServeError.badPort(port) }
        guard maxBodyBytes >= 1024 else { throw ServeError.badBodyLimit(maxBodyBytes) }
        for (flag, seconds) in [("--read-timeout", readTimeout), ("--idle-timeout", idleTimeout)] {
            guard seconds.isFinite, seconds > 0, seconds <= 86400 else { throw ServeError.badTimeout(flag: flag, value: seconds) }
        }
        guard (1...65536).contains(maxConnections) else { throw ServeError.badMaxConnections(maxConnections) }
        switch (tlsCertificate, tlsKey) {
        case (.some, nil): throw ServeError.tlsFlagMissing(given: "--tls-cert", missing: "--tls-key")
        case (nil, .some): throw ServeError.tlsFlagMissing(given: "--tls-key", missing: "--tls-cert")
        case let (.some(certificate), .some(key)):
            if insecureHTTP { throw ServeError.insecureWithTLS }
            _ = try ServeTLS.configuration(certificate: certificate, key: key)
        case (nil, nil): break
        }
        if !Self.isLoopback(host) {
            if token == nil { throw ServeError.tokenRequired(host: host) }
            // A token sent in cleartext is a token given away: off loopback, TLS
            // or the user's explicit word that something else encrypts the traffic.
            if !isTLS && !insecureHTTP { throw ServeError.cleartextOffLoopback(host: host) }
        }
    }
}
