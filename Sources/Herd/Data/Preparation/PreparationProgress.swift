import Foundation

/// What a preparation reports as it goes, and where it can be stopped: the
/// terminal's lines for `herd data prepare`; a heartbeat, events and a stop
/// request for a rank of a prepare job.
public struct PreparationProgress {
    /// A line for a person (the terminal, a rank's log).
    public var say: (String) -> Void
    /// A unit this rank finished.
    public var unitDone: (UnitReport) -> Void
    /// Called every few MiB of input tokenized and after every part merged:
    /// where a heartbeat says the rank is moving, and where a stop request
    /// is honoured by throwing (a unit cut short is redone by the next run).
    public var tick: () throws -> Void

    public init(say: @escaping (String) -> Void = { _ in }, unitDone: @escaping (UnitReport) -> Void = { _ in },
                tick: @escaping () throws -> Void = {}) {
        self.say = say; self.unitDone = unitDone; self.tick = tick
    }

    /// Input bytes between two ticks within a unit (a compressed file is one unit, however large).
    public static let tickBytes = 16 << 20
}

/// One unit prepared on one rank.
public struct UnitReport: Sendable, Equatable {
    public var unit: Int
    public var file: String
    /// Input bytes of the unit (compressed bytes for a compressed file).
    public var bytes: Int
    public var documents: Int
    public var tokens: Int
    public var seconds: Double
    /// This rank's units: done so far (this one included), and in all.
    public var rankUnitsDone: Int, rankUnits: Int
}
