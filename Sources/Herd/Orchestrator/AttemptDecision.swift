import Foundation

/// How an attempt of a job ended, as the coordinator's watch saw it.
public enum AttemptOutcome: Sendable {
    /// The launcher exited by itself with this status.
    case exited(Int32)
    /// The heartbeats said hung (why); the coordinator ended the attempt.
    case hung(String)
    /// The ranks were asked to stop (a cancel) and ended with this status.
    case stopped(Int32)
    /// Slurm requeued the job after a node failure (its n-th restart in Slurm).
    case requeued(Int)
    /// The ranks were asked to stop to grow to `fit` and ended with this status.
    case regrow(Int32, NodeFit)
}

/// What the coordinator does after an attempt ends: a pure function of the
/// outcome, the job's restart policy and its history, unit-tested without
/// processes (`Coordinator.run` only carries it out).
public enum AttemptDecision: Sendable {
    case succeed
    case cancel
    /// Relaunch larger (lost nodes are back); not a failure, no restart counted.
    case grow(NodeFit)
    case giveUp(reason: String)
    case restart(Restart)
    /// A checkpoint found no space: wait for it (DiskSpaceWait), then relaunch; no restart counted.
    case waitForSpace(DiskShortage)

    public struct Restart: Sendable, Equatable {
        public var reason: String
        /// The job's restarts after this one.
        public var number: Int
        public var delaySeconds: Double
        /// Slurm already requeued the attempt: follow it instead of launching another.
        public var followsRequeue: Bool
        /// Probe the nodes before relaunching (`restart.on_node_loss: shrink` on several nodes).
        public var probeNodes: Bool
        public init(reason: String, number: Int, delaySeconds: Double, followsRequeue: Bool, probeNodes: Bool) {
            self.reason = reason; self.number = number; self.delaySeconds = delaySeconds
            self.followsRequeue = followsRequeue; self.probeNodes = probeNodes
        }
    }

    /// What the coordinator knows when an attempt ends.
    public struct Context: Sendable {
        public var attempt: Int
        public var launcher: String
        public var launchID: String
        /// Restarts so far, and the most allowed.
        public var restarts: Int
        public var maxRestarts: Int
        public var policy: JobManifest.RestartPolicy
        /// Distinct hosts of the cluster the job was submitted on.
        public var hosts: Int
        /// The reason a rank gave when it aborted (from the attempt's logs), if any.
        public var failureDetail: String
        /// A checkpoint of this attempt found no space (its rank's checkpoint_failed event, or exit status 75).
        public var diskFull: DiskShortage?
        public init(attempt: Int, launcher: String, launchID: String, restarts: Int, maxRestarts: Int,
                    policy: JobManifest.RestartPolicy, hosts: Int, failureDetail: String = "", diskFull: DiskShortage? = nil) {
            self.attempt = attempt; self.launcher = launcher; self.launchID = launchID; self.restarts = restarts
            self.maxRestarts = maxRestarts; self.policy = policy; self.hosts = hosts; self.failureDetail = failureDetail
            self.diskFull = diskFull
        }
    }

    public static func decide(_ outcome: AttemptOutcome, _ c: Context) -> AttemptDecision {
        let reason: String
        var requeued = false
        switch outcome {
        case .exited(0), .stopped(0), .regrow(0, _): return .succeed
        case .stopped: return .cancel
        case .regrow(_, let fit): return .grow(fit)
        case .exited where c.diskFull != nil: return .waitForSpace(c.diskFull!)
        case .exited(let code):
            reason = "attempt \(c.attempt) failed: \(c.launcher) exited with status \(code)" + c.failureDetail
        case .hung(let why):
            reason = "attempt \(c.attempt) hung: \(why)"
        case .requeued(let n):
            reason = "attempt \(c.attempt): a node failed and Slurm requeued job \(c.launchID) (its restart \(n) in Slurm)"
            requeued = true
        }
        guard c.restarts < c.maxRestarts else { return .giveUp(reason: reason) }
        let number = c.restarts + 1
        return .restart(Restart(reason: reason, number: number, delaySeconds: c.policy.delay(beforeRestart: number),
                                followsRequeue: requeued, probeNodes: c.policy.shrinkOnNodeLoss && c.hosts > 1))
    }
}
