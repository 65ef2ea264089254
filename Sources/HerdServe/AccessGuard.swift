import Foundation
import Herd
import Hummingbird

/// Every request carries the token when the server has one: as
/// `Authorization: Bearer TOKEN`, or as the `herd_token` cookie a browser
/// got by opening `/?token=TOKEN` once (so the dashboard's own requests
/// carry it without the token sitting in every URL).
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?
    static var cookieName: String { "herd_token" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token else { return try await next(request, context) }
        var fromQuery = false
        var given: String?
        if let auth = request.headers[.authorization], auth.hasPrefix("Bearer ") {
            given = String(auth.dropFirst("Bearer ".count)).trimmingCharacters(in: .whitespaces)
        } else if let q = request.uri.queryParameters["token"] {
            given = String(q)
            fromQuery = true
        } else if let c = request.cookies[Self.cookieName] {
            given = c.value
        }
        guard let given, Self.equal(given, token) else {
            var r = JSONBody.error(.unauthorized, given == nil
                ? "this server needs its token: send 'Authorization: Bearer TOKEN' (or open /?token=TOKEN in a browser)"
                : "the token does not match")
            r.headers[.wwwAuthenticate] = "Bearer realm=\"herd\""
            return r
        }
        var response = try await next(request, context)
        if fromQuery {
            response.setCookie(Cookie(name: Self.cookieName, value: token, path: "/", httpOnly: true, sameSite: .strict))
        }
        return response
    }

    /// Compares in time that does not depend on where the strings differ.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) { diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return diff == 0
    }
}

/// Path parameters are never joined onto a directory as given: each is
/// parsed into what it must be (a job id is digits, a rank a number below
/// the job's world size, a checkpoint name `step-` and eight digits, a
/// pipeline one of the names the server was started with), and a file
/// about to be read must resolve — symbolic links followed — inside the
/// run directory the job store names.
enum PathGuard {
    /// 1 to 18 ASCII digits: nothing else (no sign, no dots, no percent-escapes).
    static func number(_ name: String, _ text: String?, max: Int = Int.max) throws -> Int {
        let t = text ?? ""
        guard !t.isEmpty, t.count <= 18, t.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(t), n <= max else {
            throw APIError.badParameter(name, t, expected: max == Int.max ? "a number" : "a number from 0 to \(max)")
        }
        return n
    }

    static func checkpointName(_ text: String?) throws -> Int {
        let t = text ?? ""
        let digits = t.dropFirst(5)
        guard t.hasPrefix("step-"), digits.count == 8, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let step = Int(digits) else {
            throw APIError.badParameter("checkpoint", t, expected: "a checkpoint name like step-00000100")
        }
        return step
    }

    /// `path` with symbolic links resolved, if it lies inside `root` (also resolved).
    static func contained(_ path: String, in root: String) throws -> String {
        let r = URL(fileURLWithPath: root).resolvingSymlinksInPath().standardizedFileURL.path
        let p = URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
        guard p == r || p.hasPrefix(r.hasSuffix("/") ? r : r + "/") else {
            throw APIError(.forbidden, "refused: the file asked for is outside the job's run directory")
        }
        return p
    }

    /// A query parameter that must be a whole number in a range, or absent.
    static func queryNumber(_ request: Request, _ name: String, range: ClosedRange<Int>) throws -> Int? {
        guard let q = request.uri.queryParameters[Substring(name)] else { return nil }
        let t = String(q)
        guard let n = Int(t), range.contains(n) else {
            throw APIError.badQuery(name, t, expected: "a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }
}
