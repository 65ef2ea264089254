import Foundation

/// A prepare job on one rank — the path `herd worker` takes for `kind:
/// prepare`: rank 0 makes (or continues) the plan; every rank tokenizes
/// the units the plan deals it, beating its heartbeat every few MiB and
/// writing an event per unit; ranks that finish early wait at a barrier
/// that keeps beating; rank 0 merges and publishes. A rerun after any
/// failure redoes only the units not done, so a restart loses at most the
/// units that were in flight.
public struct PreparationRank {
    public let manifest: JobManifest
    public let settings: PreparationSettings
    public let world: any Communicator
    let heartbeat: Heartbeat?
    let events: EventLog?

    public init(manifest: JobManifest, world: any Communicator, heartbeat: Heartbeat?) throws {
        guard let settings = manifest.preparation else {
            throw ManifestError(file: manifest.file, field: "prepare", message: "a prepare job needs its prepare section")
        }
        self.manifest = manifest; self.settings = settings; self.world = world; self.heartbeat = heartbeat
        events = try EventLog(run: RunDirectory(manifest.output))
    }

    /// Runs this rank's part to the end; rank 0 returns the dataset's manifest.
    @discardableResult
    public func run(say: @escaping (String) -> Void) throws -> PreparedDataset? {
        let rank = world.rank, start = DispatchTime.now().uptimeNanoseconds
        var unitsDone = 0
        let beat: (String) throws -> Void = { phase in
            heartbeat?.progress(step: unitsDone, phase: phase)
            if StopSignal.isRequested { throw PreparationStopped(rank: rank) }
        }
        // The plan: made by rank 0 (or continued from a stored one), read by the others after a barrier.
        var plan: PreparationPlan?
        if rank == 0 {
            plan = try Preparation.begin(settings)
            let units = plan?.units.count ?? manifest.steps
            var e = RunEvent(.start)
            e.job = manifest.name; e.jobKind = JobManifest.Kind.prepare.rawValue; e.steps = units; e.dataParallel = world.size
            e.bytes = plan?.inputBytes
            events?.write(e)
            if let plan {
                let done = plan.units.indices.filter { Preparation.isDone(plan, unit: $0) }
                if !done.isEmpty {
                    var r = RunEvent.resumed(step: done.count)
                    r.bytes = done.reduce(0) { $0 + plan.units[$1].bytes }
                    events?.write(r)
                    say("rank 0: \(done.count) of \(units) unit(s) already prepared; continuing")
                }
            }
        }
        try world.barrier(interval: 1) { try beat("waiting for the plan") }
        if rank != 0 { plan = try Preparation.storedPlan(settings) }
        guard let plan else {
            // Already prepared by an earlier attempt: nothing to redo.
            let done = try PreparedDataset.read(dir: settings.out)
            if rank == 0 {
                say("\(settings.out): already prepared")
                var e = RunEvent(.end)
                e.step = manifest.steps
                events?.write(e)
            }
            heartbeat?.stop(phase: "done")
            return rank == 0 ? done : nil
        }
        try Preparation.prepareUnits(plan, rank: rank, ranks: world.size, progress: PreparationProgress(
            say: say,
            unitDone: { r in
                unitsDone = r.rankUnitsDone
                events?.write(.unitPrepared(r, rank: rank))
            },
            tick: { try beat("tokenizing") }))
        try beat("tokenized")
        // Every unit done before the merge reads them.
        try world.barrier(interval: 1) { try beat("waiting for the other ranks' units") }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let dataset = try Self.merge(plan, on: world, beat: beat)
        if let d = dataset {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            events?.write(.merged(d, units: plan.units.count, seconds: seconds))
            var e = RunEvent(.end)
            e.step = plan.units.count
            e.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            events?.write(e)
            let t = d.totals
            say(String(format: "%@: %d documents, %d tokens (%@), %.2f bytes per token; %d duplicates dropped, %d bad lines skipped; merged in %.2f s",
                       settings.out, t.documents, t.tokens, d.dtype, t.bytesPerToken, t.duplicatesDropped, t.badLines, seconds))
        }
        heartbeat?.stop(phase: "done")
        return dataset
    }

    /// The merge on every rank of `world` (all units done): every rank finds
    /// the duplicates among the hashes it owns, rank 0 decides, every rank
    /// copies its share of the tokens, rank 0 publishes; between
    /// the steps a barrier that keeps calling `beat`. Rank 0 returns the
    /// dataset. What `herd data prepare --mpi-rank` runs too.
    public static func merge(_ plan: PreparationPlan, on world: any Communicator, beat: (String) throws -> Void) throws -> PreparedDataset? {
        try Preparation.findDuplicates(plan, rank: world.rank, ranks: world.size, tick: { try beat("finding duplicates") })
        try world.barrier(interval: 1) { try beat("waiting for the other ranks' duplicates") }
        if world.rank == 0 { try Preparation.decideMerge(plan, ranks: world.size, tick: { try beat("deciding the merge") }) }
        try world.barrier(interval: 1) { try beat("waiting for the merge's decision") }
        try Preparation.copyTokens(plan, rank: world.rank, ranks: world.size, tick: { try beat("copying tokens") })
        try world.barrier(interval: 1) { try beat("waiting for the other ranks' copies") }
        let dataset = world.rank == 0 ? try Preparation.publish(plan, tick: { try beat("publishing") }) : nil
        try world.barrier(interval: 1) { try beat("waiting for the dataset to be published") }
        return dataset
    }
}

/// A stop request (a cancel) honoured by a prepare job's rank: the units
/// finished are kept, the one in flight is redone by the next run.
public struct PreparationStopped: Error, CustomStringConvertible {
    public var rank: Int
    public var description: String { "stopped by a signal; the units prepared so far are kept and a rerun continues from them" }
}
