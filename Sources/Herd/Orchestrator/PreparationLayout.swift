import Foundation

/// What `herd plan` says of a prepare job: its units of work and how they
/// are dealt to its ranks (the deal every rank makes from the plan alone).
/// A preparation has no model to price: its memory is a few buffers per
/// rank whatever the corpus, and `herd data price` prices its time.
public struct PreparationLayout: Sendable {
    public var units: Int
    public var inputBytes: Int
    /// Per rank: (units, input bytes).
    public var perRank: [(units: Int, bytes: Int)]
    public var settings: PreparationSettings

    public static func make(_ settings: PreparationSettings, ranks: Int) throws -> PreparationLayout {
        // Only planning (the inputs may not be on this machine): no units to deal.
        guard let units = try? PreparationPlan.units(settings) else {
            return PreparationLayout(units: 0, inputBytes: 0, perRank: Array(repeating: (0, 0), count: ranks), settings: settings)
        }
        let plan = PreparationPlan(settings: settings, tokenizerChecksum: nil, charVocabulary: nil, units: units)
        let perRank = (0..<ranks).map { r in
            let mine = plan.units(forRank: r, of: ranks)
            return (mine.count, mine.reduce(0) { $0 + units[$1].bytes })
        }
        return PreparationLayout(units: units.count, inputBytes: plan.inputBytes, perRank: perRank, settings: settings)
    }

    func text(job: String, cluster: ClusterSpec, ranks: [RankPlan]) -> String {
        var lines = ["\(job) on \(cluster.name) (\(cluster.launcher.rawValue)): prepare, \(ranks.count) ranks"]
        lines.append(String(format: "%d unit(s), %.1f MB of input (%@) → %@, tokenizer %@", units, Double(inputBytes) / 1e6,
                            settings.inputs.joined(separator: ", "), settings.out, settings.tokenizer))
        lines.append("memory per rank: a few buffers, whatever the corpus's size; time: herd data price --cluster \(cluster.name) --bytes \(inputBytes)")
        for (r, share) in perRank.enumerated() where r < 16 {
            lines.append(String(format: "  rank %d on %@: %d unit(s), %.1f MB", r, ranks[r].host, share.units, Double(share.bytes) / 1e6))
        }
        if perRank.count > 16 { lines.append("  ...") }
        return lines.joined(separator: "\n")
    }
}
