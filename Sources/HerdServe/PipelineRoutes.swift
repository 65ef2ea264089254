import Foundation
import Herd
import Hummingbird

/// RLHF pipelines: their iteration graphs (stage states, progress,
/// durations) and the report's per-iteration figures.
struct PipelineRoutes: Sendable {
    let state: ServerState

    struct Entry: Encodable { var name: String; var manifest: String; var run: String }

    func add(to router: Router<BasicRequestContext>) {
        let api = router.group("api")
        api.get("pipelines") { _, _ in
            try JSONBody.encode(["pipelines": self.state.pipelines.keys.sorted().map { n in
                let g = self.state.pipelines[n]!
                return Entry(name: n, manifest: g.manifest.file, run: g.manifest.output)
            }])
        }
        let cache = state.cache
        api.get("pipelines/:name") { request, context in try cache.body(request) {
            let graph = try self.graph(context)
            return try JSONBody.encode(try PipelineSnapshot.make(graph: graph, state: try PipelineState.read(run: graph.manifest.output)))
        } }
        api.get("pipelines/:name/report") { request, context in try cache.body(request) {
            let graph = try self.graph(context)
            guard let figures = try PipelineSnapshot.figures(graph: graph) else {
                throw APIError(.notFound, "pipeline \(graph.manifest.name) has no evaluated iteration yet")
            }
            return try JSONBody.encode(figures)
        } }
    }

    /// Only a name the server was started with (--pipeline): never a path.
    func graph(_ context: BasicRequestContext) throws -> PipelineGraph {
        let name = context.parameters.get("name") ?? ""
        guard let g = state.pipelines[name] else {
            let known = state.pipelines.keys.sorted()
            throw APIError(.notFound, "path parameter name: no pipeline \"\(name.prefix(80))\" here (known: \(known.isEmpty ? "none; herd serve --pipeline FILE adds one" : known.joined(separator: ", ")))")
        }
        return g
    }
}
