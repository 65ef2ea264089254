import Foundation
import Herd
import Hummingbird

/// A job as the API lists it: the store's record (as `herd status --json`
/// prints it) with its progress as a fraction.
struct JobSummary: Encodable {
    var job: JobRecord
    var progress: Double { job.totalSteps > 0 ? min(1, Double(job.step) / Double(job.totalSteps)) : 0 }
    enum Extra: String, CodingKey { case progress }
    func encode(to encoder: any Encoder) throws {
        try job.encode(to: encoder)
        var c = encoder.container(keyedBy: Extra.self)
        try c.encode(progress, forKey: .progress)
    }
}

struct JobDetail: Encodable {
    var job: JobSummary
    var workers: [WorkerHealth]
    var restarts: [RestartRecord]
    var staleAfterSeconds: Double
    var flopsPerSecond: Double?
    var utilization: Double?
}

/// The JSON API over the job store and run directories, and the three
/// operations (submit, cancel, resume) through JobOperations — the same
/// code the command line runs.
struct JobRoutes: Sendable {
    let state: ServerState

    func add(to router: Router<BasicRequestContext>) {
        let api = router.group("api")
        let cache = state.cache
        api.get("jobs") { request, _ in try cache.body(request) { try JSONBody.encode(["jobs": try self.state.jobs().map(JobSummary.init)]) } }
        api.post("jobs") { request, _ in try await self.submit(request) }
        api.get("jobs/:id") { request, context in try cache.body(request) { try self.detail(try self.job(context)) } }
        api.get("jobs/:id/manifest") { request, context in try cache.body(request) { try self.manifest(try self.job(context)) } }
        api.get("jobs/:id/plan") { request, context in try cache.body(request) { try self.plan(try self.job(context)) } }
        api.get("jobs/:id/workers") { request, context in
            try cache.body(request) { try JSONBody.encode(["workers": self.state.workers(try self.job(context))]) }
        }
        api.get("jobs/:id/events") { request, context in try cache.body(request) {
            let job = try self.job(context)
            let offset = try PathGuard.queryNumber(request, "offset", range: 0...Int(Int64.max >> 1)) ?? 0
            let since = try PathGuard.queryNumber(request, "since", range: -1...Int(Int32.max))
            let limit = try PathGuard.queryNumber(request, "limit", range: 1...RunReader.maxEvents) ?? RunReader.maxEvents
            return JSONBody.raw(try RunReader.events(run: job.runDir, offset: offset, sinceStep: since, limit: limit))
        } }
        api.get("jobs/:id/checkpoints") { request, context in try cache.body(request) {
            let job = try self.job(context)
            let seconds = self.state.events.summary(run: job.runDir).saveSeconds
            return try JSONBody.encode(["checkpoints": RunReader.checkpoints(run: job.runDir, saveSeconds: seconds)])
        } }
        api.get("jobs/:id/checkpoints/:checkpoint") { _, context in
            let job = try self.job(context)
            let step = try PathGuard.checkpointName(context.parameters.get("checkpoint"))
            let store = CheckpointStore(runDirectory: job.runDir)
            guard store.steps().contains(step) else { throw APIError(.notFound, "job \(job.id) has no complete checkpoint \(CheckpointStore.name(step: step))") }
            let file = try PathGuard.contained((store.path(step: step) as NSString).appendingPathComponent(CheckpointManifest.fileName), in: job.runDir)
            guard let data = FileManager.default.contents(atPath: file) else { throw APIError(.notFound, "checkpoint \(CheckpointStore.name(step: step)) has no manifest") }
            return JSONBody.raw(data)
        }
        api.get("jobs/:id/logs/:rank") { request, context in try cache.body(request) { try self.log(request, context) } }
        api.post("jobs/:id/cancel") { request, context in
            let job = try self.job(context)
            _ = try await self.body(request, allowEmpty: true)
            let record = try JobOperations.requestCancel(self.state.store, id: job.id)
            cache.clear()
            return try JSONBody.encode(["job": JobSummary(job: record)], status: .accepted)
        }
        api.post("jobs/:id/resume") { request, context in
            let job = try self.job(context)
            let fields = try await self.body(request, allowEmpty: true)
            try Self.rejectUnknown(fields, allowed: ["cluster", "data", "tensor"])
            let cluster = try Self.clusterName(fields, "cluster")
            let data = try Self.int(fields, "data", min: 1), tensor = try Self.int(fields, "tensor", min: 1)
            let resumed = try JobOperations.resume(self.state.store, id: job.id, cluster: cluster, data: data, tensor: tensor)
            cache.clear()
            return try JSONBody.encode(ResumeAnswer(job: JobSummary(job: resumed.job), fromStep: resumed.fromStep, cluster: resumed.clusterName), status: .accepted)
        }
    }

    struct ResumeAnswer: Encodable { var job: JobSummary; var fromStep: Int; var cluster: String }

    /// The job the `:id` parameter names (digits only), reconciled with its coordinator.
    func job(_ context: BasicRequestContext) throws -> JobRecord {
        let id = try PathGuard.number("id", context.parameters.get("id"))
        return JobOperations.reconcile(state.store, try state.store.job(id))
    }

    func detail(_ job: JobRecord) throws -> Body {
        let facts = state.facts.facts(job)
        let flops = zip2(job.tokensPerSecond, facts.flopsPerToken).map { $0 * $1 }
        let util = zip2(flops, facts.peakFLOPs).flatMap { $1 > 0 ? $0 / $1 : nil }
        return try JSONBody.encode(JobDetail(job: JobSummary(job: job), workers: state.workers(job), restarts: try state.store.restarts(job.id),
                                             staleAfterSeconds: WorkerHealth.staleAfter(heartbeatSeconds: facts.heartbeatSeconds),
                                             flopsPerSecond: flops, utilization: util))
    }

    /// The manifest as the run keeps it (RUN/manifest.yaml), else the file the store names.
    func manifest(_ job: JobRecord) throws -> Body {
        let kept = RunDirectory(job.runDir).manifest
        let path = FileManager.default.fileExists(atPath: kept) ? try PathGuard.contained(kept, in: job.runDir) : job.manifest
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw APIError(.notFound, "job \(job.id): its manifest \(path) cannot be read")
        }
        return JSONBody.text(text, contentType: "application/yaml; charset=utf-8")
    }

    func plan(_ job: JobRecord) throws -> Body {
        let path = try PathGuard.contained((job.runDir as NSString).appendingPathComponent(Plan.fileName), in: job.runDir)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw APIError(.notFound, "job \(job.id) has no plan yet (its coordinator writes \(Plan.fileName) when it launches)")
        }
        return JSONBody.raw(data)
    }

    /// `/api/jobs/ID/logs/RANK?attempt=K&stream=stdout|stderr&offset=N&limit=N` or `&tail=N`;
    /// RANK `coordinator` is the coordinator's log.
    func log(_ request: Request, _ context: BasicRequestContext) throws -> Body {
        let job = try self.job(context)
        let rankText = context.parameters.get("rank") ?? ""
        let offset = try PathGuard.queryNumber(request, "offset", range: 0...Int(Int64.max >> 1))
        let tail = try PathGuard.queryNumber(request, "tail", range: 1...RunReader.maxLogBytes)
        let limit = try PathGuard.queryNumber(request, "limit", range: 1...RunReader.maxLogBytes) ?? (64 << 10)
        let path: String
        if rankText == "coordinator" {
            path = RunDirectory(job.runDir).coordinatorLog
        } else {
            let rank = try PathGuard.number("rank", rankText, max: max(job.world, 1) - 1)
            let attempt = try PathGuard.queryNumber(request, "attempt", range: 1...max(job.attempt, 1)) ?? max(job.attempt, 1)
            let stream = request.uri.queryParameters["stream"].map(String.init) ?? "stdout"
            guard stream == "stdout" || stream == "stderr" else { throw APIError.badQuery("stream", stream, expected: "stdout or stderr") }
            path = AttemptLogs.rankFile(run: job.runDir, attempt: attempt, rank: rank, stream: stream)
        }
        let page = try RunReader.log(path: try PathGuard.contained(path, in: job.runDir), offset: offset, tail: tail, limit: limit)
        return try JSONBody.encode(page)
    }

    // MARK: submit

    /// `POST /api/jobs` with `{"manifest": YAML, "cluster": YAML}` (or
    /// `"cluster_name"`: a name in clusters/ as the CLI takes), and the CLI's
    /// overrides `steps`, `output`, `corpus`. The texts are kept in
    /// `$HERD_HOME/submitted/` (the store names them, as it names a CLI
    /// user's files) and checked exactly as `herd submit` checks.
    func submit(_ request: Request) async throws -> Body {
        let fields = try await body(request, allowEmpty: false)
        try Self.rejectUnknown(fields, allowed: ["manifest", "cluster", "cluster_name", "steps", "output", "corpus"])
        guard let manifest = try Self.string(fields, "manifest") else { throw APIError(.badRequest, "field manifest: required (the job manifest's YAML text)") }
        let clusterText = try Self.string(fields, "cluster"), clusterName = try Self.clusterName(fields, "cluster_name")
        if clusterText != nil && clusterName != nil { throw APIError(.badRequest, "fields cluster and cluster_name: give one, not both") }
        let overrides = JobManifest.Overrides(corpus: try Self.string(fields, "corpus"), steps: try Self.int(fields, "steps", min: 1),
                                              output: try Self.string(fields, "output"))
        let dir = (state.configuration.storeHome as NSString).appendingPathComponent("submitted/\(Self.stamp())")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let manifestPath = dir + "/manifest.yaml"
        try manifest.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        var cluster = clusterName ?? "local"
        if let clusterText {
            cluster = dir + "/cluster.yaml"
            try clusterText.write(toFile: cluster, atomically: true, encoding: .utf8)
        }
        do {
            let (_, id) = try JobOperations.submit(manifest: manifestPath, cluster: cluster, overrides: overrides,
                                                            in: state.store, directory: state.configuration.directory)
            let job = try state.store.job(id)
            state.cache.clear()
            return try JSONBody.encode(["job": JobSummary(job: job)], status: .created)
        } catch {
            try? FileManager.default.removeItem(atPath: dir)
            // Name the body's fields, not the files they were kept in.
            func named(_ text: String) -> String {
                text.replacingOccurrences(of: manifestPath, with: "manifest").replacingOccurrences(of: dir + "/cluster.yaml", with: "cluster")
            }
            if let e = error as? JobStoreError { throw APIError(.conflict, named(e.message)) }
            if let e = error as? ManifestError { throw APIError(.badRequest, named(e.description)) }
            throw error
        }
    }

    static func stamp() -> String {
        String(format: "%.0f-%@", Date().timeIntervalSince1970 * 1000, UUID().uuidString.prefix(8).lowercased())
    }

    /// The body as a JSON object, read up to the server's limit (413 past it).
    func body(_ request: Request, allowEmpty: Bool) async throws -> [String: Any] {
        let limit = state.configuration.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError(.contentTooLarge, "the request body has \(length) bytes; this server takes at most \(limit)")
        }
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: limit) } catch {
            throw APIError(.contentTooLarge, "the request body is larger than this server takes (\(limit) bytes)")
        }
        if buffer.readableBytes == 0 {
            if allowEmpty { return [:] }
            throw APIError(.badRequest, "the request needs a JSON object as its body")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)), let fields = object as? [String: Any] else {
            throw APIError(.badRequest, "the body is not a JSON object")
        }
        return fields
    }

    static func rejectUnknown(_ fields: [String: Any], allowed: Set<String>) throws {
        if let bad = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError(.badRequest, "field \(bad): unknown (expected one of \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    static func string(_ fields: [String: Any], _ key: String) throws -> String? {
        guard let v = fields[key], !(v is NSNull) else { return nil }
        guard let s = v as? String else { throw APIError(.badRequest, "field \(key): expected a string") }
        return s
    }

    /// A cluster named as in clusters/ (`local`): letters, digits, `-`, `_`, `.` — never a path.
    static func clusterName(_ fields: [String: Any], _ key: String) throws -> String? {
        guard let n = try string(fields, key) else { return nil }
        let ok = !n.isEmpty && n.count <= 100 && !n.hasPrefix(".")
            && n.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) }
        guard ok, !n.hasSuffix(".yaml"), !n.hasSuffix(".yml") else {
            throw APIError(.badRequest, "field \(key): expected the name of a cluster in clusters/ (like local), got \"\(n.prefix(80))\"")
        }
        return n
    }

    static func int(_ fields: [String: Any], _ key: String, min: Int) throws -> Int? {
        guard let v = fields[key], !(v is NSNull) else { return nil }
        // JSON's true and false arrive as NSNumbers too (type "c"): not numbers here.
        guard let n = v as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue == n.doubleValue.rounded(), n.intValue >= min else {
            throw APIError(.badRequest, "field \(key): expected a whole number of at least \(min)")
        }
        return n.intValue
    }
}

func zip2<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}
