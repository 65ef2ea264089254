import Foundation
import Herd
import Hummingbird
import HummingbirdCore
import HummingbirdTLS

/// `herd serve`: one Hummingbird server for the JSON API (/api/...), the
/// Prometheus metrics (/metrics) and the dashboard (/). Middleware order:
/// errors become JSON answers, then the token is checked, then the routes.
public enum HerdServer {
    /// The router, for the server and for tests that want it in process.
    static func router(state: ServerState, metrics: MetricsExporter) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: TokenMiddleware(token: state.configuration.token))
        JobRoutes(state: state).add(to: router)
        PipelineRoutes(state: state).add(to: router)
        router.get("metrics") { request, _ in
            state.cache.body(request) { JSONBody.text(metrics.scrape(), contentType: "text/plain; version=0.0.4; charset=utf-8") }
        }
        for (path, file) in DashboardAssets.files {
            router.get(RouterPath(path)) { _, _ in JSONBody.text(file.1, contentType: file.0) }
        }
        return router
    }

    /// Checks the configuration, then serves until SIGINT or SIGTERM.
    /// `onListening` gets the address actually bound (with port 0, the port chosen).
    public static func run(_ configuration: ServeConfiguration, onListening: @escaping @Sendable (String, Int) -> Void) async throws {
        try configuration.validate()
        let state = try ServerState(configuration: configuration)
        let metrics = MetricsExporter(state: state)
        // Read and idle deadlines on every connection, TLS in front of them
        // when asked for, and a cap on connections open at once (ConnectionLimits.swift).
        let deadlines = ConnectionDeadlineSettings(readTimeout: configuration.readTimeout, idleTimeout: configuration.idleTimeout,
                                                   stats: state.connections)
        var server = HTTPServerBuilder { responder in GuardedHTTP1Channel(responder: responder, deadlines: deadlines) }
        if let certificate = configuration.tlsCertificate, let key = configuration.tlsKey {
            server = try .tls(server, tlsConfiguration: ServeTLS.configuration(certificate: certificate, key: key))
        }
        let app = Application(
            router: router(state: state, metrics: metrics),
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "herd",
                                 availableConnectionsDelegate: ConnectionCap(limit: configuration.maxConnections, stats: state.connections)),
            onServerRunning: { channel in
                onListening(configuration.host, channel.localAddress?.port ?? configuration.port)
            })
        try await app.runService()
    }
}
