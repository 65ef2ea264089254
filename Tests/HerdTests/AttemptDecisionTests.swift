import XCTest
import Herd

/// The coordinator's decision after an attempt, without processes.
final class AttemptDecisionTests: XCTestCase {
    func context(restarts: Int = 0, maxRestarts: Int = 2, shrink: Bool = false, hosts: Int = 1, detail: String = "",
                 diskFull: DiskShortage? = nil) -> AttemptDecision.Context {
        var policy = JobManifest.RestartPolicy()
        policy.backoffSeconds = 2
        policy.maxBackoffSeconds = 5
        policy.shrinkOnNodeLoss = shrink
        return .init(attempt: 3, launcher: "mpirun", launchID: "1234", restarts: restarts, maxRestarts: maxRestarts,
                     policy: policy, hosts: hosts, failureDetail: detail, diskFull: diskFull)
    }

    var fit: NodeFit { NodeFit(cluster: .thisMachine(slots: 2, cores: 2), lost: [], why: "", data: 2) }

    func restart(_ d: AttemptDecision) -> AttemptDecision.Restart? {
        if case .restart(let r) = d { return r }
        return nil
    }

    func testCleanEndsSucceedAndAStopIsACancel() {
        for outcome in [AttemptOutcome.exited(0), .stopped(0), .regrow(0, fit)] {
            guard case .succeed = AttemptDecision.decide(outcome, context()) else { return XCTFail("\(outcome)") }
        }
        guard case .cancel = AttemptDecision.decide(.stopped(143), context()) else { return XCTFail() }
        guard case .grow(let f) = AttemptDecision.decide(.regrow(143, fit), context()) else { return XCTFail() }
        XCTAssertEqual(f.data, 2)
    }

    func testFailuresRestartWithBackoffUntilTheLimit() throws {
        let first = try XCTUnwrap(restart(AttemptDecision.decide(.exited(1), context(detail: " — rank 1: out of memory"))))
        XCTAssertEqual(first, .init(reason: "attempt 3 failed: mpirun exited with status 1 — rank 1: out of memory", number: 1,
                                    delaySeconds: 2, followsRequeue: false, probeNodes: false))
        // Backoff doubles, capped at max_backoff_seconds.
        XCTAssertEqual(restart(AttemptDecision.decide(.hung("rank 0 silent"), context(restarts: 1, maxRestarts: 5)))?.delaySeconds, 4)
        XCTAssertEqual(restart(AttemptDecision.decide(.hung("rank 0 silent"), context(restarts: 3, maxRestarts: 5)))?.delaySeconds, 5)
        XCTAssertEqual(restart(AttemptDecision.decide(.hung("rank 0 silent"), context()))?.reason, "attempt 3 hung: rank 0 silent")
        guard case .giveUp(let reason) = AttemptDecision.decide(.exited(9), context(restarts: 2, maxRestarts: 2)) else { return XCTFail() }
        XCTAssertTrue(reason.contains("status 9"), reason)
        guard case .giveUp = AttemptDecision.decide(.hung("x"), context(restarts: 0, maxRestarts: 0)) else { return XCTFail() }
    }

    func testARequeueIsFollowedAndShrinkProbesOnlySeveralNodes() throws {
        let r = try XCTUnwrap(restart(AttemptDecision.decide(.requeued(1), context())))
        XCTAssertTrue(r.followsRequeue)
        XCTAssertTrue(r.reason.contains("Slurm requeued job 1234"), r.reason)
        XCTAssertEqual(restart(AttemptDecision.decide(.exited(1), context(shrink: true, hosts: 3)))?.probeNodes, true)
        XCTAssertEqual(restart(AttemptDecision.decide(.exited(1), context(shrink: true, hosts: 1)))?.probeNodes, false)
        XCTAssertEqual(restart(AttemptDecision.decide(.exited(1), context(shrink: false, hosts: 3)))?.probeNodes, false)
    }

    /// A checkpoint that found no space is waited out, not restarted: no
    /// restart counted, not even past the limit; a clean end or a cancel
    /// still wins, a hang is a hang, and without the shortage the same status restarts.
    func testACheckpointThatFoundNoSpaceWaitsForSpaceInsteadOfRestarting() throws {
        let full = DiskShortage(path: "/r/checkpoints/step-00000040.tmp/rank-00000.zst", neededBytes: 400_000, freeBytes: 1000,
                                reason: "checkpoint step-00000040 found no space")
        for c in [context(diskFull: full), context(restarts: 2, maxRestarts: 2, diskFull: full)] {
            for outcome in [AttemptOutcome.exited(CheckpointSpace.exitStatus), .exited(3)] {
                guard case .waitForSpace(let s) = AttemptDecision.decide(outcome, c) else { return XCTFail("\(outcome)") }
                XCTAssertEqual(s, full)
            }
        }
        guard case .succeed = AttemptDecision.decide(.exited(0), context(diskFull: full)) else { return XCTFail() }
        guard case .cancel = AttemptDecision.decide(.stopped(143), context(diskFull: full)) else { return XCTFail() }
        XCTAssertEqual(restart(AttemptDecision.decide(.exited(CheckpointSpace.exitStatus), context()))?.number, 1)
        XCTAssertEqual(restart(AttemptDecision.decide(.hung("rank 1 silent"), context(diskFull: full)))?.number, 1)
        XCTAssertTrue(DiskSpaceWait.enough(free: 400_000, needed: 400_000))
        XCTAssertFalse(DiskSpaceWait.enough(free: 399_999, needed: 400_000))
        XCTAssertFalse(DiskSpaceWait.enough(free: 0, needed: 0), "a need not known waits for some space")
    }
}
