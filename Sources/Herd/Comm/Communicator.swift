/// The collectives training needs, over a group of ranks. An OpenMPI
/// implementation runs across processes; the single-process one makes the
/// same code run unchanged in one process. Collectives are blocking and
/// must be called by every rank of the group in the same order.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }

    func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp)
    func allReduce(_ buffer: UnsafeMutablePointer<Double>, count: Int, op: ReduceOp)
    /// Sums `send` (size · countPerRank) across ranks; rank r receives block r.
    func reduceScatter(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, countPerRank: Int)
    /// Concatenates every rank's `send` block into `receive` (size · countPerRank), in rank order.
    func allGather(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, countPerRank: Int)
    /// Sums `send` (Σ counts values) across ranks; rank r receives the
    /// counts[r] values of block r (blocks in rank order).
    func reduceScatter(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, counts: [Int])
    /// Concatenates every rank's block (counts[r] values) into `receive`, in
    /// rank order; this rank's block is read from `send`, which may already
    /// be its place in `receive`.
    func allGather(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, counts: [Int])
    /// Sums bf16 values (16-bit words) in place across ranks, each sum taken
    /// in fp32 and rounded to bf16.
    func allReduceBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int)
    /// `reduceScatter(send:receive:counts:)` of bf16 values.
    func reduceScatterBF16(send: UnsafePointer<UInt16>, receive: UnsafeMutablePointer<UInt16>, counts: [Int])
    /// `allGather(send:receive:counts:)` started and left to finish: the
    /// caller computes meanwhile and calls `wait()` before reading
    /// `receive` (or writing `send`). Every rank starts it in the same order
    /// among the group's other collectives.
    func startAllGather(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, counts: [Int]) -> PendingCollective
    func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int)
    func barrier()
    /// A barrier whose wait calls `waiting` about every `interval` seconds
    /// (a heartbeat, a stop request that throws): ranks that finished their
    /// share early wait here without looking hung.
    func barrier(interval: Double, waiting: () throws -> Void) throws
    /// A sub-group of the ranks that pass the same `color`, ordered by `key`.
    func split(color: Int, key: Int) -> Communicator
}

public enum ReduceOp: Sendable { case sum, max }

/// A non-blocking collective in flight.
public protocol PendingCollective: AnyObject {
    /// Returns once the collective is complete on this rank.
    func wait()
}

/// A collective that completed when it was started (one rank alone).
final class CompletedCollective: PendingCollective {
    func wait() {}
}

extension Communicator {
    /// Rank `root`'s floats on every rank, whatever their number: its
    /// length first, then them (`message` is only read on the root).
    public func broadcast(_ message: [Float], root: Int) -> [Float] {
        var n = Float(message.count)
        broadcast(&n, count: 1, root: root)
        var data = rank == root ? message : [Float](repeating: 0, count: Int(n))
        broadcast(&data, count: data.count, root: root)
        return data
    }

    public func allReduce(_ value: Double, op: ReduceOp = .sum) -> Double {
        var v = value
        allReduce(&v, count: 1, op: op)
        return v
    }
}

/// One rank alone: every collective is the identity.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) {}
    public func allReduce(_ buffer: UnsafeMutablePointer<Double>, count: Int, op: ReduceOp) {}
    public func reduceScatter(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, countPerRank: Int) {
        if UnsafePointer(receive) != send { receive.update(from: send, count: countPerRank) }
    }
    public func allGather(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, countPerRank: Int) {
        if UnsafePointer(receive) != send { receive.update(from: send, count: countPerRank) }
    }
    public func reduceScatter(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, counts: [Int]) {
        if UnsafePointer(receive) != send { receive.update(from: send, count: counts[0]) }
    }
    public func allGather(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, counts: [Int]) {
        if UnsafePointer(receive) != send { receive.update(from: send, count: counts[0]) }
    }
    public func allReduceBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int) {}
    public func reduceScatterBF16(send: UnsafePointer<UInt16>, receive: UnsafeMutablePointer<UInt16>, counts: [Int]) {
        if UnsafePointer(receive) != send { receive.update(from: send, count: counts[0]) }
    }
    public func startAllGather(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, counts: [Int]) -> PendingCollective {
        allGather(send: send, receive: receive, counts: counts)
        return CompletedCollective()
    }
    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) {}
    public func barrier() {}
    public func barrier(interval: Double, waiting: () throws -> Void) throws {}
    public func split(color: Int, key: Int) -> Communicator { SingleProcessCommunicator() }
}
