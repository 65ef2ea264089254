import Foundation
import NIOSSL

/// `herd serve --tls-cert CERT.pem --tls-key KEY.pem`: the files read,
/// parsed and checked against each other before anything listens, each
/// failure a `ServeError` that names the flag, the file and what was
/// expected (a bad file found at the first handshake would leave a server
/// that listens and answers nobody).
enum ServeTLS {
    /// PEM files are small; anything larger is not one.
    static let largestFile = 1 << 20

    static func configuration(certificate: String, key: String) throws -> TLSConfiguration {
        let certText = try read("--tls-cert", certificate)
        let keyText = try read("--tls-key", key)
        let chain = try certificates(certText, path: certificate)
        let privateKey = try self.privateKey(keyText, path: key)
        // The leaf's dates: an expired certificate makes every client refuse.
        let now = time(nil)
        if let leaf = chain.first {
            if leaf.notValidAfter < now {
                throw ServeError.tlsFile(flag: "--tls-cert", path: certificate,
                                         problem: "the certificate expired on \(date(leaf.notValidAfter)); expected one valid now")
            }
            if leaf.notValidBefore > now {
                throw ServeError.tlsFile(flag: "--tls-cert", path: certificate,
                                         problem: "the certificate is not valid before \(date(leaf.notValidBefore)); expected one valid now")
            }
        }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                           privateKey: .privateKey(privateKey))
        tls.minimumTLSVersion = .tlsv12
        // BoringSSL checks that the key is the certificate's when the context is built.
        do { _ = try NIOSSLContext(configuration: tls) } catch {
            throw ServeError.tlsMismatch(certificate: certificate, key: key, reason: "\(error)")
        }
        return tls
    }

    private static func read(_ flag: String, _ path: String) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ServeError.tlsFile(flag: flag, path: path, problem: "no such file")
        }
        guard !isDirectory.boolValue else {
            throw ServeError.tlsFile(flag: flag, path: path, problem: "is a directory; expected a PEM file")
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ServeError.tlsFile(flag: flag, path: path, problem: "cannot read it (\((error as NSError).localizedDescription))")
        }
        guard data.count <= largestFile else {
            throw ServeError.tlsFile(flag: flag, path: path, problem: "\(data.count) bytes; a PEM file is far smaller")
        }
        return [UInt8](data)
    }

    private static func certificates(_ bytes: [UInt8], path: String) throws -> [NIOSSLCertificate] {
        let text = String(decoding: bytes, as: UTF8.self)
        let expected = "expected a PEM certificate chain (-----BEGIN CERTIFICATE-----), the server's certificate first"
        guard text.contains("-----BEGIN CERTIFICATE-----") else {
            let hint = text.contains("PRIVATE KEY-----") ? "it holds a private key: are --tls-cert and --tls-key swapped? " : ""
            throw ServeError.tlsFile(flag: "--tls-cert", path: path, problem: "no certificate in it; \(hint)\(expected)")
        }
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMBytes(bytes) } catch {
            throw ServeError.tlsFile(flag: "--tls-cert", path: path, problem: "not a readable certificate (\(error)); \(expected)")
        }
        guard !chain.isEmpty else { throw ServeError.tlsFile(flag: "--tls-cert", path: path, problem: expected) }
        return chain
    }

    private static func privateKey(_ bytes: [UInt8], path: String) throws -> NIOSSLPrivateKey {
        let text = String(decoding: bytes, as: UTF8.self)
        let expected = "expected an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)"
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || text.contains("Proc-Type: 4,ENCRYPTED") {
            throw ServeError.tlsFile(flag: "--tls-key", path: path,
                                     problem: "the key is encrypted, and herd serve asks no passphrase; \(expected) (openssl pkey -in KEY -out PLAIN)")
        }
        guard text.contains("-----BEGIN"), text.contains("PRIVATE KEY-----") else {
            let hint = text.contains("-----BEGIN CERTIFICATE-----") ? "it holds a certificate: are --tls-cert and --tls-key swapped? " : ""
            throw ServeError.tlsFile(flag: "--tls-key", path: path, problem: "no private key in it; \(hint)\(expected)")
        }
        do { return try NIOSSLPrivateKey(bytes: bytes, format: .pem) } catch {
            throw ServeError.tlsFile(flag: "--tls-key", path: path, problem: "not a readable private key (\(error)); \(expected)")
        }
    }

    private static func date(_ t: time_t) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(t)))
    }
}
