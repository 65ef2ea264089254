import XCTest
import Foundation
import Herd

/// `herd serve` for real: the release binary on a real port, real training
/// jobs started through its API, Debian's Chromium reading the dashboard,
/// Debian's Prometheus scraping /metrics. Skips, saying why, where Chromium
/// or Prometheus is not installed (make test installs both).
final class ServeTests: FixtureTestCase {
    static let dir = NSTemporaryDirectory() + "herd-serve-\(getpid())"
    static let home = dir + "/home"
    static let cluster = """
        name: local
        launcher: mpirun
        nodes:
          - {hosts: [localhost], slots: 2, cores: 2, memory_gb: 16, peak_tflops: 0.1}
        """

    override class func setUp() {
        prepare {
            try HerdBinary.writeCorpus(in: dir)
            try cluster.write(toFile: dir + "/local.yaml", atomically: true, encoding: .utf8)
        }
    }

    override class func tearDown() {
        // Jobs still running (a failed test) are cancelled, so nothing outlives the suite.
        if let store = try? JobStore(home: home) {
            for j in (try? store.jobs()) ?? [] where !j.state.isFinal { _ = try? JobOperations.requestCancel(store, id: j.id) }
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// tiny-gqa on bytes, data parallel over two ranks, fast heartbeats, and
    /// a restart backoff long enough for a watcher to see the dead rank first.
    static func manifest(_ name: String, steps: Int, data: Int = 2, interval: Int = 100, backoff: Double = 6) -> (text: String, run: String) {
        HerdBinary.orchestratedManifest(dir: dir, name: name, steps: steps, interval: interval, data: data, backoff: backoff, logInterval: 10)
    }

    func post(_ server: ServeProcess, _ path: String, _ object: [String: Any]) throws -> (status: Int, json: [String: Any]) {
        let a = try server.request(path, method: "POST", headers: ["Content-Type": "application/json"],
                                   body: try JSONSerialization.data(withJSONObject: object))
        return (a.status, (try? JSONSerialization.jsonObject(with: a.body) as? [String: Any]) ?? ["raw": a.text])
    }

    func job(_ server: ServeProcess, _ id: Int) throws -> [String: Any] {
        try XCTUnwrap(try server.json("/api/jobs/\(id)")["job"] as? [String: Any])
    }

    /// Polls the API until `done` holds for the job (fails after `timeout` s).
    @discardableResult
    func wait(_ server: ServeProcess, _ id: Int, timeout: Double = 90, _ what: String, until done: ([String: Any]) -> Bool) throws -> [String: Any] {
        let end = Date().addingTimeInterval(timeout)
        var last: [String: Any] = [:]
        while Date() < end {
            last = try job(server, id)
            if done(last) { return last }
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTFail("job \(id): timed out waiting for \(what); last: \(last)")
        return last
    }

    func testDashboardFollowsATrainingJobAndShowsAKilledWorkerDeadBeforeItsRestart() throws {
        try Chromium.require()
        let shots = try TestOutput.directory("serve")
        let server = try ServeProcess(home: Self.home)
        defer { server.stop() }
        let base = "http://127.0.0.1:\(server.port)/"

        // Submitted through the API: manifest and cluster in the body.
        let m = Self.manifest("dash", steps: 6000)
        let submitted = try post(server, "/api/jobs", ["manifest": m.text, "cluster": Self.cluster])
        XCTAssertEqual(submitted.status, 201, "\(submitted.json)")
        let id = try XCTUnwrap((submitted.json["job"] as? [String: Any])?["id"] as? Int)
        try wait(server, id, "step 50") { ($0["step"] as? Int ?? 0) >= 50 }

        // The job list shows it running, with its progress bar.
        var dom = try Chromium.dom(base)
        XCTAssertTrue(dom.contains(#"<div id="status">ready</div>"#), dom)
        XCTAssertTrue(dom.contains(#"class="job" data-id="\#(id)" data-state="running""#), dom)
        XCTAssertNotNil(dom.range(of: #"class="fill" style="width:\d+%""#, options: .regularExpression))
        try Chromium.screenshot(base, to: shots + "/1-jobs.png", size: "1300,500")

        // Its page: the loss curve gains points while it trains.
        let page = base + "#/job/\(id)"
        dom = try Chromium.dom(page)
        let first = DOM.lossPoints(dom)
        XCTAssertGreaterThan(first, 0, dom)
        XCTAssertEqual(DOM.rankStatus(dom, rank: 0), "ok")
        Thread.sleep(forTimeInterval: 3)
        dom = try Chromium.dom(page)
        let second = DOM.lossPoints(dom)
        XCTAssertGreaterThan(second, first, "the loss curve did not grow")
        try Chromium.screenshot(page, to: shots + "/2-job-training.png")

        // SIGKILL one worker after a checkpoint: the page shows it dead while
        // the job is still on its first attempt (the restart waits 6 s).
        try wait(server, id, "a checkpoint") { $0["lastCheckpointStep"] as? Int != nil }
        let victim = try XCTUnwrap(HeartbeatRecord.readAll(run: m.run).first { $0.rank == 1 }).pid
        XCTAssertEqual(kill(victim, SIGKILL), 0)
        let killed = Date()
        var sawDead = false
        while Date().timeIntervalSince(killed) < 20 {
            dom = try Chromium.dom(page, budget: 1200)
            if DOM.rankStatus(dom, rank: 1) == "dead" {
                XCTAssertTrue(dom.contains("(attempt 1)"), "dead rank shown only after the restart")
                XCTAssertEqual(try job(server, id)["attempt"] as? Int, 1, "the job was restarted before the page showed the rank dead")
                sawDead = true
                try Chromium.screenshot(page, to: shots + "/3-rank-dead.png", budget: 1200)
                break
            }
        }
        XCTAssertTrue(sawDead, "rank 1 never showed as dead; last DOM: \(dom.suffix(3000))")
        print("ServeTests: rank 1 shown dead \(String(format: "%.1f", Date().timeIntervalSince(killed))) s after SIGKILL")

        // Then the coordinator restarts it, and the page follows.
        try wait(server, id, "attempt 2 running") { $0["attempt"] as? Int == 2 && $0["state"] as? String == "running" }
        try wait(server, id, "new heartbeats") { _ in HeartbeatRecord.readAll(run: m.run).allSatisfy { $0.pid != victim } }
        dom = try Chromium.dom(page)
        XCTAssertTrue(dom.contains("(attempt 2)"), dom)
        XCTAssertEqual(DOM.rankStatus(dom, rank: 1), "ok")
        try Chromium.screenshot(page, to: shots + "/4-restarted.png")

        // Cancel and resume through the API (the CLI's operations).
        let cancel = try post(server, "/api/jobs/\(id)/cancel", [:])
        XCTAssertEqual(cancel.status, 202, "\(cancel.json)")
        try wait(server, id, "cancelled") { $0["state"] as? String == "cancelled" }
        XCTAssertEqual(try post(server, "/api/jobs/\(id)/cancel", [:]).status, 409)
        let saved = try XCTUnwrap(CheckpointStore(runDirectory: m.run).latest())
        let resumed = try post(server, "/api/jobs/\(id)/resume", ["data": 1])
        XCTAssertEqual(resumed.status, 202, "\(resumed.json)")
        XCTAssertEqual(resumed.json["fromStep"] as? Int, saved)
        try wait(server, id, "running again past the checkpoint") { $0["state"] as? String == "running" && ($0["step"] as? Int ?? 0) > saved }
        XCTAssertEqual(try job(server, id)["data"] as? Int, 1)
        XCTAssertEqual(try post(server, "/api/jobs/\(id)/cancel", [:]).status, 202)
        try wait(server, id, "cancelled again") { $0["state"] as? String == "cancelled" }

        // herd plot: the run's loss curve as SVG.
        let plot = try HerdBinary.run(["plot", m.run, "--out", shots + "/loss.svg"])
        XCTAssertEqual(plot.status, 0, plot.err)
        let svg = try String(contentsOfFile: shots + "/loss.svg", encoding: .utf8)
        let points = svg.range(of: #"data-name="training loss" data-points="(\d+)""#, options: .regularExpression).map { Int(svg[$0].split(separator: "\"")[3]) ?? 0 } ?? 0
        XCTAssertGreaterThan(points, second, svg.prefix(500).description)
        // --png: the same figure rendered by Chromium.
        let png = try HerdBinary.run(["plot", m.run, "--out", shots + "/loss.svg", "--png"])
        XCTAssertEqual(png.status, 0, png.err)
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: shots + "/loss.png"))
        XCTAssertEqual(Array(bytes.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "loss.png is not a PNG")
        print("ServeTests: screenshots and loss.svg in \(shots)")
    }

    func testPrometheusScrapesServeAndAnswersWithTheJobsStepSeries() throws {
        let prometheus = "/usr/bin/prometheus"
        try require(FileManager.default.isExecutableFile(atPath: prometheus), "prometheus", "make test installs it: apt-get install prometheus")
        let server = try ServeProcess(home: Self.home)
        defer { server.stop() }
        let m = Self.manifest("scraped", steps: 20000, data: 1, interval: 0, backoff: 0.5)
        let submitted = try post(server, "/api/jobs", ["manifest": m.text, "cluster": Self.cluster])
        XCTAssertEqual(submitted.status, 201, "\(submitted.json)")
        let id = try XCTUnwrap((submitted.json["job"] as? [String: Any])?["id"] as? Int)

        let work = Self.dir + "/prometheus"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try """
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            scrape_configs:
              - job_name: herd
                static_configs: [{targets: ["127.0.0.1:\(server.port)"]}]
            """.write(toFile: work + "/prometheus.yml", atomically: true, encoding: .utf8)
        let webPort = RawHTTP.freePort()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: prometheus)
        p.arguments = ["--config.file=\(work)/prometheus.yml", "--storage.tsdb.path=\(work)/data",
                       "--web.listen-address=127.0.0.1:\(webPort)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        defer { p.terminate(); p.waitUntilExit() }

        func query(_ q: String) throws -> [[String: Any]] {
            let path = "/api/v1/query?query=" + q.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            guard let a = try? RawHTTP.request(port: webPort, method: "GET", path: path), a.status == 200,
                  let o = try JSONSerialization.jsonObject(with: a.body) as? [String: Any],
                  let data = o["data"] as? [String: Any] else { return [] }
            return data["result"] as? [[String: Any]] ?? []
        }
        // Prometheus keeps one sample a scrape: wait for several of the job's step series.
        let selector = #"herd_job_step{job_id="\#(id)"}"#
        let end = Date().addingTimeInterval(60)
        var samples: [[String: Any]] = []
        func number(_ r: [[String: Any]]) -> Double { Double(((r.first?["value"] as? [Any])?.last as? String) ?? "") ?? 0 }
        while Date() < end {
            samples = try query("count_over_time(\(selector)[1m])")
            if number(samples) >= 3 { break }
            Thread.sleep(forTimeInterval: 0.5)
        }
        let latest = try query(selector)
        let metric = try XCTUnwrap(latest.first?["metric"] as? [String: String], "no \(selector) in Prometheus")
        XCTAssertEqual(metric["job"], "herd")
        XCTAssertEqual(metric["job_name"], "scraped")
        let step = try XCTUnwrap(Double(((latest.first?["value"] as? [Any])?.last as? String) ?? ""))
        XCTAssertGreaterThan(step, 0)
        XCTAssertLessThanOrEqual(step, Double(try job(server, id)["step"] as? Int ?? 0))
        let count = number(samples)
        XCTAssertGreaterThanOrEqual(count, 3, "Prometheus scraped the step fewer than 3 times")
        // The series rises over time: its largest sample is above its smallest.
        let rise = try query("max_over_time(\(selector)[1m]) - min_over_time(\(selector)[1m])")
        XCTAssertGreaterThan(number(rise), 0, "the step did not rise between scrapes")
        print("ServeTests: Prometheus has \(Int(count)) samples of \(selector), latest \(Int(step))")
        XCTAssertEqual(try post(server, "/api/jobs/\(id)/cancel", [:]).status, 202)
        try wait(server, id, "cancelled") { $0["state"] as? String == "cancelled" }
    }
}
