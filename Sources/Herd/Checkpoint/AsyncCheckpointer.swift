import Foundation

/// Asynchronous saves: training goes on while a background thread
/// compresses and writes a snapshot of this rank's state. Extra memory is
/// bounded by one snapshot (the parameters and moments this rank writes),
/// allocated once; a second save waits for the first. The background
/// thread only writes files; the collective parts (agreeing that every
/// rank's part is on disk, rank 0's commit) run on the training thread
/// between steps, so MPI is only ever called from there.
public final class AsyncCheckpointer {
    let model: Llama
    let optimizer: AdamW
    let context: ParallelContext
    let job: any RunIdentity
    let settings: CheckpointSettings
    let snapshotParams: FloatBuffer
    let snapshotM: FloatBuffer, snapshotV: FloatBuffer

    struct Pending {
        var step: Int, sequencesConsumed: Int, optimizerSteps: Int
        var need: CheckpointSpace.Need
        var started: UInt64
        var done: DispatchSemaphore
        var error: Error?
    }
    private var pending: Pending?
    private let lock = NSLock()
    private var finishedLocally = false
    private var writeError: Error?

    public init(model: Llama, optimizer: AdamW, context: ParallelContext, job: any RunIdentity, settings: CheckpointSettings) {
        self.model = model; self.optimizer = optimizer; self.context = context; self.job = job; self.settings = settings
        // Only what this rank writes: the weights of data rank 0 (or under ZeRO-3 its part).
        snapshotParams = FloatBuffer(count: CheckpointWriter.sources(model: model, optimizer: optimizer, context: context).paramRange.count)
        snapshotM = FloatBuffer(count: optimizer.range.count)
        snapshotV = FloatBuffer(count: optimizer.range.count)
    }

    /// Starts a save of the state after `step` (collective; returns at once
    /// after copying the state, having first completed any earlier save).
    public func start(step: Int, sequencesConsumed: Int) throws -> CheckpointWriter.Result? {
        let earlier = try finish()
        var src = CheckpointWriter.sources(model: model, optimizer: optimizer, context: context)
        src.bf16Weights = settings.weightDType == "bf16"
        let need = try CheckpointWriter.prepare(step: step, job: job, world: context.world, writes: CheckpointWriter.uncompressedBytes(src))
        let kept = src.paramRange
        snapshotParams.base.update(from: src.params + kept.lowerBound, count: kept.count)
        snapshotM.copy(from: optimizer.m)
        snapshotV.copy(from: optimizer.v)
        src.params = UnsafePointer(snapshotParams.base - kept.lowerBound)
        src.m = UnsafePointer(snapshotM.base - optimizer.range.lowerBound)
        src.v = UnsafePointer(snapshotV.base - optimizer.range.lowerBound)
        let done = DispatchSemaphore(value: 0)
        lock.lock(); finishedLocally = false; writeError = nil; lock.unlock()
        pending = Pending(step: step, sequencesConsumed: sequencesConsumed, optimizerSteps: optimizer.step, need: need,
                          started: DispatchTime.now().uptimeNanoseconds, done: done)
        let dir = CheckpointWriter.temporaryDirectory(job, step: step), rank = context.world.rank, level = settings.level
        let frozen = src
        let thread = Thread { [self] in
            var failure: Error?
            do { try CheckpointWriter.writeRankPart(frozen, dir: dir, rank: rank, level: level) } catch { failure = error }
            lock.lock(); finishedLocally = true; writeError = failure; lock.unlock()
            done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
        return earlier
    }

    /// Between steps: commits the pending save if every rank's part is on
    /// disk (collective: every rank calls it at the same steps).
    public func poll() throws -> CheckpointWriter.Result? {
        guard pending != nil else { return nil }
        lock.lock(); let mine = finishedLocally; lock.unlock()
        let all = context.world.allReduce(mine ? 0 : 1, op: .max) == 0
        return all ? try commit() : nil
    }

    /// Waits for the pending save and commits it (collective).
    public func finish() throws -> CheckpointWriter.Result? {
        guard let p = pending else { return nil }
        p.done.wait()
        context.world.barrier()
        return try commit()
    }

    /// Collective, on the training thread, once every rank's part is written
    /// (or failed): a failure on the background thread surfaces here, on
    /// every rank at once (`CheckpointSpace.agree`), and so does one of rank 0's commit.
    private func commit() throws -> CheckpointWriter.Result {
        guard let p = pending else { preconditionFailure("no pending save") }
        pending = nil
        lock.lock(); let failure = writeError; lock.unlock()
        // Every rank must learn whether any rank failed to write its part.
        try CheckpointSpace.agree(context.world, failure, step: p.step, need: p.need, job: job)
        var bytes = 0, committed: Error?
        if context.isLeader {
            do {
                bytes = try CheckpointWriter.commit(step: p.step, sequencesConsumed: p.sequencesConsumed, optimizerSteps: p.optimizerSteps,
                                                    model: model.config, context: context, job: job, settings: settings)
            } catch { committed = error }
        }
        try CheckpointSpace.agree(context.world, committed, step: p.step, need: p.need, job: job)
        return .init(directory: CheckpointStore(runDirectory: job.output).path(step: p.step), bytes: bytes,
                     seconds: Double(DispatchTime.now().uptimeNanoseconds - p.started) / 1e9)
    }
}
