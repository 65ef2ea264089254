import Foundation

/// A pipeline's iteration graphs as data — what `herd rlhf status` prints,
/// for the HTTP API, the dashboard and /metrics: every stage with its
/// state, progress and duration.
public struct PipelineSnapshot: Codable, Sendable {
    public enum StageState: String, Codable, Sendable, CaseIterable {
        case pending, running, finished, failed
        /// Marked running, but its scheduler died (herd rlhf resume continues it).
        case stopped
    }

    public struct Stage: Codable, Sendable {
        public var id: String
        public var name: String
        public var state: StageState
        public var progress: String
        /// Finished and failed stages: how long they ran; running ones: so far.
        public var seconds: Double?
        public var attempts: Int
        public var isJob: Bool
    }

    public struct Iteration: Codable, Sendable {
        public var name: String
        /// In the order the scheduler runs them: each stage depends on the one before.
        public var stages: [Stage]
    }

    public var name: String
    public var manifest: String
    public var run: String
    public var selection: String
    /// The last iteration launched (nil when none was).
    public var target: String?
    public var iterations: [Iteration]

    public static func make(graph: PipelineGraph, state: PipelineState?, now: Double = Date().timeIntervalSince1970) throws -> PipelineSnapshot {
        let m = graph.manifest
        var iterations: [Iteration] = []
        for n in 0...m.iterations.count {
            let stages = try graph.stages(n).map { s -> Stage in
                let r = state?.stages[s.id]
                var seconds: Double?
                let st: StageState
                switch r?.phase {
                case nil: st = .pending
                case .finished?: st = .finished; seconds = r?.seconds
                case .failed?: st = .failed; seconds = r?.seconds
                case .running?:
                    let alive = r?.pid.map { Spawn.isAlive(Int($0)) } ?? false
                    st = alive ? .running : .stopped
                    seconds = alive ? now - (r?.started ?? now) : nil
                }
                return Stage(id: s.id, name: s.name, state: st, progress: r == nil ? "" : PipelineStatus.progress(s.progress),
                             seconds: seconds, attempts: r?.attempts ?? 0, isJob: s.isJob)
            }
            iterations.append(Iteration(name: PipelineGraph.iterationName(n), stages: stages))
        }
        return PipelineSnapshot(name: m.name, manifest: m.file, run: m.output,
                                selection: m.selection == .annotator ? "annotator" : "reward models",
                                target: state.map { PipelineGraph.iterationName($0.target) }, iterations: iterations)
    }

    /// The report's figures through the last evaluated iteration (nil
    /// before any evaluation): `report.json` as the scheduler last wrote it
    /// (after every evaluation), or computed when it is missing or older
    /// than the newest evaluation — the intervals take a moment to compute.
    public static func figures(graph: PipelineGraph) throws -> PipelineReport.Figures? {
        let report = "\(graph.manifest.output)/report.json"
        func modified(_ path: String) -> Date? { (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date }
        let newest = (0...graph.manifest.iterations.count).compactMap { modified(graph.evaluation($0)) }.max()
        if let written = modified(report), newest.map({ written >= $0 }) ?? true, let data = FileManager.default.contents(atPath: report),
           let f = try? JSONDecoder().decode(PipelineReport.Figures.self, from: data) {
            return f
        }
        guard let last = (0...graph.manifest.iterations.count).last(where: { FileManager.default.fileExists(atPath: graph.evaluation($0)) }) else {
            return nil
        }
        return try PipelineReport(graph: graph).figures(through: last)
    }
}
