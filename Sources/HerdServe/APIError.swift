import Foundation
import Herd
import Hummingbird

/// A refusal with its HTTP status and a message that names what to fix
/// (the field, the parameter); rendered as {"error": message}.
public struct APIError: Error, CustomStringConvertible, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var description: String { message }

    public init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status; self.message = message
    }

    static func badParameter(_ name: String, _ value: String, expected: String) -> APIError {
        APIError(.badRequest, "path parameter \(name): expected \(expected), got \"\(value.prefix(80))\"")
    }
    static func badQuery(_ name: String, _ value: String, expected: String) -> APIError {
        APIError(.badRequest, "query parameter \(name): expected \(expected), got \"\(value.prefix(80))\"")
    }
}

/// Turns every error a handler throws into a JSON answer with a 4xx or 5xx
/// status — never a dropped connection — and maps Herd's own errors to the
/// status that fits them.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            return JSONBody.error(e.status, e.message)
        } catch let e as HTTPError {
            return JSONBody.error(e.status, e.body ?? (e.status == .notFound ? "no such path: \(request.uri.path.prefix(200))" : e.status.reasonPhrase))
        } catch let e as JobOperationError {
            return JSONBody.error(.conflict, e.description)
        } catch let e as JobStoreError {
            return JSONBody.error(e.message.hasPrefix("no job") ? .notFound : .badRequest, e.message)
        } catch let e as ManifestError {
            return JSONBody.error(.badRequest, e.description)
        } catch {
            return JSONBody.error(.internalServerError, "\(error)")
        }
    }
}

/// An answer's bytes, kept as bytes (not a streamed body) so that the
/// response cache can hand the same answer to many clients.
struct Body: ResponseGenerator, Sendable {
    var status: HTTPResponse.Status = .ok
    var contentType: String
    var data: Data

    func response(from request: Request, context: some RequestContext) throws -> Response { response }

    var response: Response {
        Response(status: status, headers: [.contentType: contentType, .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// JSON answers, encoded the way `herd status --json` prints (sorted keys).
enum JSONBody {
    static func encode<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Body {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return raw(try enc.encode(value), status: status)
    }

    static func raw(_ data: Data, status: HTTPResponse.Status = .ok, contentType: String = "application/json; charset=utf-8") -> Body {
        Body(status: status, contentType: contentType, data: data)
    }

    static func text(_ text: String, contentType: String, status: HTTPResponse.Status = .ok) -> Body {
        Body(status: status, contentType: contentType, data: Data(text.utf8))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: ["error": message, "status": status.code], options: [.sortedKeys])) ?? Data()
        return raw(data, status: status).response
    }
}

/// GET answers kept for a quarter of a second, by path and query: however
/// many dashboards and scrapers poll, each answer is computed at most four
/// times a second, so watchers cost the training machine a bounded amount.
/// Operations (POST) clear it, so their effect shows at once.
final class ResponseCache: @unchecked Sendable {
    static let seconds = 0.25
    private let lock = NSLock()
    private var entries: [String: (time: Double, body: Body)] = [:]

    func body(_ request: Request, _ make: () throws -> Body) rethrows -> Body {
        let key = request.uri.description
        let now = Date().timeIntervalSince1970
        lock.lock()
        if let e = entries[key], now - e.time < Self.seconds { lock.unlock(); return e.body }
        lock.unlock()
        let body = try make()
        guard body.status == .ok else { return body }
        lock.lock()
        if entries.count > 512 { entries = entries.filter { now - $0.value.time < Self.seconds } }
        entries[key] = (now, body)
        lock.unlock()
        return body
    }

    func clear() { lock.lock(); entries.removeAll(); lock.unlock() }
}
