import Foundation

// The sections about the run rather than the model: evaluation, checkpoints,
// restarts and monitoring. Each is all defaults when left out.

extension JobManifest.EvalSpec {
    static func parse(_ f: YAMLFields) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: ["interval", "max_sequences"])
        return Self(interval: try f.int("interval", min: 0, max: JobManifest.Limits.steps) ?? 0,
                    maxSequences: try f.int("max_sequences", min: 1, max: JobManifest.Limits.sequences))
    }
}

extension CheckpointSettings {
    /// `endStep`: the interval when the section gives none — the last step
    /// for a kind that checkpoints its end (`KindDefaults.checkpointsEnd`),
    /// or nil: no checkpoints.
    static func parse(_ f: YAMLFields, endStep: Int?) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: ["interval", "keep", "keep_every", "level", "async", "dtype"])
        var c = Self()
        c.weightDType = try f.string("dtype") ?? "fp32"
        guard ["fp32", "bf16"].contains(c.weightDType) else {
            throw f.error("dtype", "expected fp32 or bf16, got \"\(c.weightDType)\"")
        }
        c.async = try f.bool("async") ?? c.async
        // `interval:` with no value still says "no checkpoints", not the end's.
        c.interval = try f.int("interval", min: 0, max: JobManifest.Limits.steps) ?? (f.has("interval") ? 0 : endStep ?? 0)
        c.keep = try f.int("keep", min: 1, max: 1_000_000) ?? c.keep
        c.keepEvery = try f.int("keep_every", min: 1, max: JobManifest.Limits.steps)
        c.level = try f.int("level", min: -7) ?? c.level
        if c.level > 19 { throw f.error("level", "must be a zstd level from -7 to 19, got \(c.level)") }
        return c
    }
}

extension JobManifest.RestartPolicy {
    static func parse(_ f: YAMLFields) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: ["max_restarts", "backoff_seconds", "max_backoff_seconds", "on_node_loss", "grow_check_seconds"])
        var r = Self()
        let loss = try f.string("on_node_loss") ?? "wait"
        guard loss == "wait" || loss == "shrink" else {
            throw f.error("on_node_loss", "expected wait (relaunch on the same nodes once the lost one is back) or shrink (go on with fewer data-parallel ranks on the nodes that remain), got \"\(loss)\"")
        }
        r.shrinkOnNodeLoss = loss == "shrink"
        if let g = try f.double("grow_check_seconds", min: 0, max: 86_400) {
            guard r.shrinkOnNodeLoss else { throw f.error("grow_check_seconds", "only with on_node_loss: shrink (a job that waits for its nodes never shrinks)") }
            r.growCheckSeconds = g
        }
        r.maxRestarts = try f.int("max_restarts", min: 0, max: 1_000_000) ?? r.maxRestarts
        r.backoffSeconds = try f.double("backoff_seconds", min: 0, max: 86_400) ?? r.backoffSeconds
        // A longer first backoff than the default cap raises the cap to it.
        r.maxBackoffSeconds = try f.double("max_backoff_seconds", min: 0, max: 86_400) ?? max(r.maxBackoffSeconds, r.backoffSeconds)
        return r
    }
}

extension JobManifest.MonitorSpec {
    static func parse(_ f: YAMLFields) throws(ManifestError) -> Self {
        try f.rejectUnknown(allowed: ["heartbeat_seconds", "hang_timeout_seconds"])
        var m = Self()
        m.heartbeatSeconds = try f.double("heartbeat_seconds", min: 0.1, max: 86_400) ?? m.heartbeatSeconds
        m.hangTimeoutSeconds = try f.double("hang_timeout_seconds", min: 1, max: 7 * 86_400) ?? m.hangTimeoutSeconds
        // A rank that beats every heartbeat_seconds must be able to miss one before it is called hung.
        guard m.hangTimeoutSeconds >= 2 * m.heartbeatSeconds else {
            throw f.error("hang_timeout_seconds", "must be at least twice monitor.heartbeat_seconds (\(m.heartbeatSeconds)), got \(m.hangTimeoutSeconds)")
        }
        return m
    }
}
