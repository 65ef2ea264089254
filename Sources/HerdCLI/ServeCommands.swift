import ArgumentParser
import Foundation
import Herd
import HerdServe

/// `herd serve`: the coordinator's HTTP API, /metrics and the dashboard.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the job store over HTTP: a JSON API (/api), Prometheus metrics (/metrics) and a live dashboard (/).")
    @Option(help: "Address to listen on; anything but loopback needs a token, and TLS or --insecure-http.") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port, printed when listening).") var port = ServeConfiguration.defaultPort
    @Option(help: "A file holding the token every request must carry (default: the HERD_TOKEN variable, if set).") var tokenFile: String?
    @Option(help: "An RLHF pipeline manifest to show (repeatable).") var pipeline: [String] = []
    @Option(help: "Largest request body accepted, in bytes.") var maxBodyBytes = 1 << 20
    @Option(help: "Scheduling niceness of the server (0-19): above 0, training on the same cores goes first.") var nice = 10
    @Option(help: "PEM certificate chain: serve HTTPS (with --tls-key).") var tlsCert: String?
    @Option(help: "PEM private key of --tls-cert (unencrypted).") var tlsKey: String?
    @Flag(help: "Serve cleartext HTTP off loopback (only behind a TLS proxy or on a trusted network).") var insecureHttp = false
    @Option(help: "Seconds a request head has to arrive in whole; slower connections are closed.")
    var readTimeout = ServeConfiguration.defaultReadTimeout
    @Option(help: "Seconds a keep-alive connection may sit idle between requests.") var idleTimeout = ServeConfiguration.defaultIdleTimeout
    @Option(help: "Connections open at once; beyond it new ones wait until others close.")
    var maxConnections = ServeConfiguration.defaultMaxConnections

    func run() throws {
        let config: ServeConfiguration
        do {
            config = ServeConfiguration(host: host, port: port, token: try ServeConfiguration.token(file: tokenFile),
                                        maxBodyBytes: maxBodyBytes, pipelines: pipeline, tlsCertificate: tlsCert, tlsKey: tlsKey,
                                        insecureHTTP: insecureHttp, readTimeout: readTimeout, idleTimeout: idleTimeout,
                                        maxConnections: maxConnections)
            try config.validate()
        } catch { fail(error) }
        guard (0...19).contains(nice) else { fail(ValidationError("--nice: expected 0 to 19, got \(nice)")) }
        if nice > 0 { Niceness.keep(Int32(nice)) }
        signal(SIGPIPE, SIG_IGN)
        let done = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        let auth = (config.token == nil ? "no token (loopback only)" : "token required") + (config.isTLS ? "; TLS" : "")
        let scheme = config.scheme
        Task.detached {
            do {
                try await HerdServer.run(config) { host, port in
                    print("herd: serving \(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)/ (API /api/jobs, metrics /metrics; \(auth))")
                    fflush(stdout)
                }
            } catch { outcome.set(error) }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { fail(error) }
    }

    /// The server task's error, handed back to the command's thread.
    final class Outcome: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: Error?
        func set(_ e: Error) { lock.lock(); stored = e; lock.unlock() }
        var error: Error? { lock.lock(); defer { lock.unlock() }; return stored }
    }
}

/// `herd plot RUN|PIPELINE.yaml`: a run's loss and tokens/s curves, or a
/// pipeline's per-iteration figures, as an SVG file.
struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a run's loss curve (and tokens/s) as SVG, or for an RLHF pipeline manifest its per-iteration figures.")
    @Argument(help: "A run directory (with events.jsonl), or a pipeline manifest (.yaml).") var target: String
    @Option(help: "Where to write the SVG (default: RUN/loss.svg, or the pipeline's run directory's report.svg).") var out: String?
    @Flag(help: "Also write a PNG beside it (rendered by a headless Chromium, when installed).") var png = false

    func run() throws {
        var isDir: ObjCBool = false
        let svg: String, path: String
        if FileManager.default.fileExists(atPath: target, isDirectory: &isDir), isDir.boolValue {
            guard let figure = CurvePlot.runFigure(run: target) else {
                fail(ValidationError("\(target): no training steps in \(target)/events.jsonl yet"))
            }
            (svg, path) = (figure, out ?? (target as NSString).appendingPathComponent("loss.svg"))
        } else if target.hasSuffix(".yaml") || target.hasSuffix(".yml") {
            let m: PipelineManifest
            do { m = try PipelineManifest.load(path: target, checkFiles: false) } catch { fail(error) }
            let figures: PipelineReport.Figures?
            do { figures = try PipelineSnapshot.figures(graph: PipelineGraph(manifest: m)) } catch { fail(error) }
            guard let figures else { fail(PipelineError.notLaunched(run: m.output)) }
            (svg, path) = (PipelineReport.svg(figures), out ?? (m.output as NSString).appendingPathComponent("report.svg"))
        } else {
            fail(ValidationError("\(target): expected a run directory or a pipeline manifest (.yaml)"))
        }
        do { try svg.write(toFile: path, atomically: true, encoding: .utf8) } catch { fail(error) }
        print(path)
        if png { try writePNG(svg: path) }
    }

    /// Chromium's screenshot of the SVG, at the SVG's own size.
    func writePNG(svg: String) throws {
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: FileManager.default.isExecutableFile) else {
            fail(ValidationError("--png: no chromium here (apt-get install chromium); the SVG is written"))
        }
        let text = (try? String(contentsOfFile: svg, encoding: .utf8)) ?? ""
        func attr(_ name: String) -> Int {
            guard let r = text.range(of: "\(name)=\""), let end = text[r.upperBound...].firstIndex(of: "\"") else { return 800 }
            return Int(Double(text[r.upperBound..<end]) ?? 800)
        }
        let png = (svg as NSString).deletingPathExtension + ".png"
        let url = URL(fileURLWithPath: svg).standardizedFileURL.absoluteString
        let r = try Spawn.capture(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                                             "--window-size=\(attr("width")),\(attr("height"))", "--screenshot=\(png)", url])
        guard r.status == 0, FileManager.default.fileExists(atPath: png) else {
            fail(ValidationError("--png: chromium failed (status \(r.status)): \(r.err.suffix(400))"))
        }
        print(png)
    }
}

/// A watcher must not slow what it watches: every thread of `herd serve`
/// runs at a niceness, so training on the same cores goes first. Linux
/// keeps niceness per thread, and Dispatch sets its own workers' when it
/// makes them, so a thread of ours re-applies it to every thread of the
/// process once a second.
enum Niceness {
    static func keep(_ value: Int32) {
        apply(value)
        let thread = Thread {
            while true { Thread.sleep(forTimeInterval: 1); apply(value) }
        }
        thread.name = "niceness"
        thread.start()
    }

    static func apply(_ value: Int32) {
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        for t in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? [] {
            guard let tid = id_t(t) else { continue }
            errno = 0
            let now = getpriority(which, tid)
            if errno == 0 && now < value { setpriority(which, tid, value) }
        }
    }
}
