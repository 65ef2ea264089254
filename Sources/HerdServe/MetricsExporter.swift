import Foundation
import Herd
import Prometheus

/// `/metrics` in Prometheus' text format, through swift-prometheus. The
/// values are read at scrape time from the job store, the run directories'
/// heartbeats and events, and the pipelines' state files, so a scrape
/// always sees what `herd status` would print at that moment. Names follow
/// Prometheus' conventions: the unit in the name, `_total` for counters,
/// `_ratio` for fractions; `job_id` rather than `job`, which Prometheus
/// itself sets on every scraped series.
final class MetricsExporter: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let state: ServerState
    private let lock = NSLock()
    /// Counters only go up: what was last added for each (name, labels).
    private var counted: [String: Int64] = [:]
    /// Per-rank gauges of each live job, by labels: dropped when the job
    /// ends or the rank goes away, so no series outlives what it measures.
    private var workerGauges: [Int: [String: Gauge]] = [:]

    init(state: ServerState) { self.state = state }

    func scrape() -> String {
        lock.lock()
        defer { lock.unlock() }
        let now = Date().timeIntervalSince1970
        for job in (try? state.jobs()) ?? [] { record(job, now: now) }
        for (name, graph) in state.pipelines { record(pipeline: name, graph: graph, now: now) }
        recordConnections()
        return registry.emitToString()
    }

    @discardableResult
    private func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Double?) -> Gauge? {
        guard let value, value.isFinite else { return nil }
        let g = registry.makeGauge(name: name, labels: labels, help: help)
        g.set(value)
        return g
    }

    /// Sets a counter to a total that only grows (a total that shrank — a
    /// store rebuilt — is not subtracted: counters never go down).
    private func counter(_ name: String, _ help: String, _ labels: [(String, String)], total: Int64) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let before = counted[key] ?? 0
        let c = registry.makeCounter(name: name, labels: labels, help: help)
        if total > before {
            c.increment(by: total - before)
            counted[key] = total
        }
    }

    /// The server's own connections (ConnectionLimits.swift).
    private func recordConnections() {
        let c = state.connections.snapshot
        gauge("herd_serve_connections", "Connections open to herd serve now.", [], Double(c.open))
        counter("herd_serve_accept_paused_total", "Times herd serve stopped accepting at --max-connections.", [],
                total: Int64(c.acceptPauses))
        counter("herd_serve_connection_timeouts_total", "Connections closed by herd serve at a deadline: read (a request head not "
                + "whole within --read-timeout) or idle (--idle-timeout between requests).", [("deadline", "read")],
                total: Int64(c.readTimeouts))
        counter("herd_serve_connection_timeouts_total", "Connections closed by herd serve at a deadline: read (a request head not "
                + "whole within --read-timeout) or idle (--idle-timeout between requests).", [("deadline", "idle")],
                total: Int64(c.idleTimeouts))
    }

    private func record(_ job: JobRecord, now: Double) {
        let l = [("job_id", String(job.id)), ("job_name", job.name)]
        gauge("herd_job_step", "The job's last reported optimizer step.", l, Double(job.step))
        gauge("herd_job_steps", "The steps the job runs in all.", l, Double(job.totalSteps))
        gauge("herd_job_loss", "Training loss at the last reported step.", l, job.loss)
        gauge("herd_job_validation_loss", "Held-out loss at the last evaluation.", l, job.validationLoss)
        gauge("herd_job_tokens_per_second", "Training tokens per second over the last logging window.", l, job.tokensPerSecond)
        gauge("herd_job_input_bytes_per_second", "A prepare job's input bytes tokenized per second over its attempt.", l, job.bytesPerSecond)
        gauge("herd_job_eta_seconds", "Seconds the job still needs at its current rate.", l, job.state == .running ? job.etaSeconds : nil)
        gauge("herd_job_attempt", "The job's current attempt (1 is the first launch).", l, Double(job.attempt))
        let facts = state.facts.facts(job)
        let flops = zip2(job.tokensPerSecond, facts.flopsPerToken).map { $0 * $1 }
        gauge("herd_job_flops_per_second", "Achieved training FLOP/s (tokens/s times the model's training FLOPs per token).", l, flops)
        gauge("herd_job_utilization_ratio", "Achieved FLOP/s over the peak of the slots the job runs on.", l,
              zip2(flops, facts.peakFLOPs).flatMap { $1 > 0 ? $0 / $1 : nil })
        for s in JobState.allCases {
            gauge("herd_job_state", "1 for the job's current state, 0 for the others.", l + [("state", s.rawValue)], job.state == s ? 1 : 0)
        }
        counter("herd_job_restarts_total", "Restarts of the job, automatic and by hand (herd resume).", l,
                total: Int64((try? state.store.restarts(job.id).count) ?? 0))
        let events = state.events.summary(run: job.runDir)
        counter("herd_job_checkpoints_saved_total", "Checkpoints the job's workers reported saved.", l, total: Int64(events.checkpointsSaved))
        gauge("herd_job_checkpoint_save_seconds", "Time the last checkpoint took to save.", l, events.lastCheckpointSeconds)
        gauge("herd_job_checkpoint_size_bytes", "Size on disk of the last checkpoint saved.", l, events.lastCheckpointBytes)
        var current: [String: Gauge] = [:]
        func keep(_ g: Gauge?, _ name: String, _ labels: [(String, String)]) {
            if let g { current[name + labels.map { "|\($0.0)=\($0.1)" }.joined()] = g }
        }
        if !job.state.isFinal {
            for w in state.workers(job) {
                let wl = l + [("rank", String(w.rank))]
                keep(gauge("herd_worker_heartbeat_age_seconds", "Seconds since the rank last wrote its heartbeat.", wl, w.heartbeatAgeSeconds),
                     "heartbeat", wl)
                keep(gauge("herd_worker_progress_age_seconds", "Seconds since the rank's training loop last moved.", wl, w.progressAgeSeconds),
                     "progress", wl)
                keep(gauge("herd_worker_resident_bytes", "The rank's resident memory at its last heartbeat.", wl, w.residentBytes.map(Double.init)),
                     "rss", wl)
                keep(gauge("herd_worker_peak_resident_bytes", "The rank's peak resident memory so far (VmHWM).", wl, w.peakResidentBytes.map(Double.init)),
                     "peak_rss", wl)
                for s in WorkerHealth.Status.allCases {
                    let sl = wl + [("status", s.rawValue)]
                    keep(gauge("herd_worker_status", "1 for the rank's current status (ok, stale, dead, exited), 0 for the others.",
                               sl, w.status == s ? 1 : 0), "status", sl)
                }
            }
        }
        for (key, g) in workerGauges[job.id] ?? [:] where current[key] == nil { registry.unregisterGauge(g) }
        workerGauges[job.id] = current.isEmpty ? nil : current
    }

    private func record(pipeline name: String, graph: PipelineGraph, now: Double) {
        guard let snapshot = try? PipelineSnapshot.make(graph: graph, state: try PipelineState.read(run: graph.manifest.output), now: now) else { return }
        for it in snapshot.iterations {
            for s in it.stages {
                let l = [("pipeline", name), ("iteration", it.name), ("stage", s.name)]
                for st in PipelineSnapshot.StageState.allCases {
                    gauge("herd_rlhf_stage_state", "1 for the RLHF stage's current state, 0 for the others.", l + [("state", st.rawValue)], s.state == st ? 1 : 0)
                }
                gauge("herd_rlhf_stage_duration_seconds", "How long the stage ran (finished or failed), or has run so far.", l, s.seconds)
            }
        }
        guard let figures = try? PipelineSnapshot.figures(graph: graph) else { return }
        for r in figures.policies {
            let l = [("pipeline", name), ("iteration", r.iteration), ("policy", r.policy)]
            for m in EvaluationMetric.allCases {
                guard let i = r.interval(m) else { continue }
                let lm = l + [("metric", m.rawValue)]
                gauge("herd_rlhf_eval", "An evaluation figure of the policy on the held-out prompts.", lm, i.estimate)
                gauge("herd_rlhf_eval_low", "The lower bound of the figure's 95% interval.", lm, i.low)
                gauge("herd_rlhf_eval_high", "The upper bound of the figure's 95% interval.", lm, i.high)
            }
            if let p = r.promoted { gauge("herd_rlhf_promoted", "1 if the gate promoted the iteration's policy, 0 if it did not.", l, p ? 1 : 0) }
        }
    }
}
