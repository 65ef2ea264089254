import Foundation
import Herd

/// What the server needs from a job's manifest, model and cluster files —
/// the heartbeat interval (to call a rank stale), FLOPs per token and the
/// peak of the slots it runs on (to turn tokens/s into FLOP/s and a
/// utilisation) — read once per attempt and layout, not on every request.
final class JobFactsCache: @unchecked Sendable {
    struct Facts: Sendable {
        var heartbeatSeconds: Double
        var flopsPerToken: Double?
        var peakFLOPs: Double?
    }

    private let lock = NSLock()
    private var cache: [String: Facts] = [:]

    func facts(_ job: JobRecord) -> Facts {
        let key = "\(job.id)/\(job.attempt)/\(job.data)x\(job.tensor)/\(job.cluster)"
        lock.lock()
        if let f = cache[key] { lock.unlock(); return f }
        lock.unlock()
        let f = Self.read(job)
        lock.lock(); cache[key] = f; lock.unlock()
        return f
    }

    private static func read(_ job: JobRecord) -> Facts {
        var facts = Facts(heartbeatSeconds: JobManifest.MonitorSpec().heartbeatSeconds)
        let manifest = (try? ResolvedJob.read(RunDirectory(job.runDir)))?.manifest
        if let manifest { facts.heartbeatSeconds = manifest.monitor.heartbeatSeconds }
        if let manifest, manifest.kind != .ppo,
           let data = FileManager.default.contents(atPath: RunDirectory(job.runDir).model),
           let model = try? JSONDecoder().decode(LlamaConfig.self, from: data) {
            facts.flopsPerToken = model.trainingFLOPsPerToken(seqLen: manifest.data.seqLen)
        }
        if let cluster = try? ClusterSpec.read(RunDirectory(job.runDir), orFile: job.cluster) {
            let slots = cluster.slotHosts.prefix(job.world)
            facts.peakFLOPs = slots.map { cluster.nodes[$0.group].peakTFLOPs * 1e12 }.reduce(0, +)
        }
        return facts
    }
}
