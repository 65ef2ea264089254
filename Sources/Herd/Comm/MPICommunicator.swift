import CMPI
import Foundation

/// OpenMPI behind `Communicator`. The process calls `MPIRuntime.start()`
/// once (MPI_Init_thread) before making one, and `finish()` at the end.
/// Handles such as MPI_COMM_WORLD are macros in C; the shim in CMPI gives
/// accessor functions for them.
public final class MPICommunicator: Communicator {
    let comm: MPI_Comm
    public let rank: Int
    public let size: Int
    /// MPI takes Int32 counts; larger buffers go in pieces of this many.
    static let maxChunk = 1 << 30

    init(_ comm: MPI_Comm) {
        self.comm = comm
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &s)
        rank = Int(r)
        size = Int(s)
    }

    public static func world() -> MPICommunicator { MPICommunicator(herd_mpi_comm_world()) }

    private func mpiOp(_ op: ReduceOp) -> MPI_Op { op == .sum ? herd_mpi_sum() : herd_mpi_max() }

    private func check(_ code: Int32, _ what: String) {
        if code != herd_mpi_success() { MPIRuntime.abort(rank: rank, reason: "\(what) failed with MPI error \(code)") }
    }

    public func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: ReduceOp) {
        var done = 0
        while done < count {
            let n = min(Self.maxChunk, count - done)
            check(MPI_Allreduce(herd_mpi_in_place(), buffer + done, Int32(n), herd_mpi_float(), mpiOp(op), comm), "MPI_Allreduce")
            done += n
        }
    }

    public func allReduce(_ buffer: UnsafeMutablePointer<Double>, count: Int, op: ReduceOp) {
        check(MPI_Allreduce(herd_mpi_in_place(), buffer, Int32(count), herd_mpi_double(), mpiOp(op), comm), "MPI_Allreduce")
    }

    public func reduceScatter(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, countPerRank: Int) {
        precondition(countPerRank <= Self.maxChunk, "reduce-scatter block too large for one MPI call")
        check(MPI_Reduce_scatter_block(UnsafeMutableRawPointer(mutating: send), receive, Int32(countPerRank),
                                       herd_mpi_float(), herd_mpi_sum(), comm), "MPI_Reduce_scatter_block")
    }

    public func allGather(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, countPerRank: Int) {
        precondition(countPerRank <= Self.maxChunk, "all-gather block too large for one MPI call")
        // In place when this rank's block already sits at its place in `receive`.
        let inPlace = UnsafePointer(receive + rank * countPerRank) == send
        check(MPI_Allgather(inPlace ? herd_mpi_in_place() : UnsafeMutableRawPointer(mutating: send),
                            Int32(countPerRank), herd_mpi_float(),
                            receive, Int32(countPerRank), herd_mpi_float(), comm), "MPI_Allgather")
    }

    public func reduceScatter(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, counts: [Int]) {
        precondition(counts.count == size && counts.reduce(0, +) <= Self.maxChunk, "reduce-scatter too large for one MPI call")
        let c = counts.map { Int32($0) }
        check(MPI_Reduce_scatter(UnsafeMutableRawPointer(mutating: send), receive, c, herd_mpi_float(), herd_mpi_sum(), comm),
              "MPI_Reduce_scatter")
    }

    public func allGather(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, counts: [Int]) {
        precondition(counts.count == size && counts.reduce(0, +) <= Self.maxChunk, "all-gather too large for one MPI call")
        let c = counts.map { Int32($0) }
        var displacements = [Int32](repeating: 0, count: size)
        for r in 1..<max(size, 1) { displacements[r] = displacements[r - 1] + c[r - 1] }
        let inPlace = UnsafePointer(receive + Int(displacements[rank])) == send
        check(MPI_Allgatherv(inPlace ? herd_mpi_in_place() : UnsafeMutableRawPointer(mutating: send), c[rank], herd_mpi_float(),
                             receive, c, displacements, herd_mpi_float(), comm), "MPI_Allgatherv")
    }

    public func allReduceBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int) {
        var done = 0
        while done < count {
            let n = min(Self.maxChunk, count - done)
            check(MPI_Allreduce(herd_mpi_in_place(), buffer + done, Int32(n), herd_mpi_uint16(), herd_mpi_bf16_sum(), comm), "MPI_Allreduce (bf16)")
            done += n
        }
    }

    public func reduceScatterBF16(send: UnsafePointer<UInt16>, receive: UnsafeMutablePointer<UInt16>, counts: [Int]) {
        precondition(counts.count == size && counts.reduce(0, +) <= Self.maxChunk, "reduce-scatter too large for one MPI call")
        check(MPI_Reduce_scatter(UnsafeMutableRawPointer(mutating: send), receive, counts.map { Int32($0) }, herd_mpi_uint16(),
                                 herd_mpi_bf16_sum(), comm), "MPI_Reduce_scatter (bf16)")
    }

    public func startAllGather(send: UnsafePointer<Float>, receive: UnsafeMutablePointer<Float>, counts: [Int]) -> PendingCollective {
        precondition(counts.count == size && counts.reduce(0, +) <= Self.maxChunk, "all-gather too large for one MPI call")
        let pending = MPIPendingCollective(counts: counts, rank: rank)
        check(MPI_Iallgatherv(UnsafeMutableRawPointer(mutating: send), pending.counts[rank], herd_mpi_float(),
                              receive, pending.counts, pending.displacements, herd_mpi_float(), comm, &pending.request),
              "MPI_Iallgatherv")
        return pending
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) {
        check(MPI_Bcast(buffer, Int32(count), herd_mpi_float(), Int32(root), comm), "MPI_Bcast")
    }

    public func barrier() { check(MPI_Barrier(comm), "MPI_Barrier") }

    /// MPI_Ibarrier, tested every few milliseconds, `waiting` called every `interval`.
    public func barrier(interval: Double, waiting: () throws -> Void) throws {
        var request: MPI_Request?
        check(MPI_Ibarrier(comm, &request), "MPI_Ibarrier")
        var done: Int32 = 0, last = DispatchTime.now().uptimeNanoseconds
        while true {
            check(MPI_Test(&request, &done, herd_mpi_status_ignore()), "MPI_Test")
            if done != 0 { return }
            let now = DispatchTime.now().uptimeNanoseconds
            if Double(now - last) / 1e9 >= interval { last = now; try waiting() }
            usleep(5_000)
        }
    }

    public func split(color: Int, key: Int) -> Communicator {
        var sub = herd_mpi_comm_null()
        check(MPI_Comm_split(comm, Int32(color), Int32(key), &sub), "MPI_Comm_split")
        return MPICommunicator(sub!)
    }
}

/// Process-wide MPI state.
public enum MPIRuntime {
    /// MPI_Init_thread with FUNNELED: only the main thread calls MPI (the
    /// batch threads of a rank compute, they never communicate).
    public static func start() {
        var provided: Int32 = 0
        var argc = CommandLine.argc
        var argv = Optional(CommandLine.unsafeArgv)
        let rc = MPI_Init_thread(&argc, &argv, herd_mpi_thread_funneled(), &provided)
        if rc != herd_mpi_success() {
            FileHandle.standardError.write("herd worker: MPI_Init_thread failed (\(rc))\n".data(using: .utf8)!)
            exit(1)
        }
    }

    public static func finish() { MPI_Finalize() }

    /// Ends the whole job: prints the rank and reason, then MPI_Abort, which
    /// makes mpirun stop every other rank (none is left waiting in a collective).
    public static func abort(rank: Int, reason: String, code: Int32 = 3) -> Never {
        FileHandle.standardError.write("herd worker rank \(rank): \(reason)\n".data(using: .utf8)!)
        MPI_Abort(herd_mpi_comm_world(), code)
        exit(code)
    }
}

/// An MPI request and the count and displacement arrays MPI reads until it completes.
final class MPIPendingCollective: PendingCollective {
    var request: MPI_Request?
    let counts: UnsafeMutablePointer<Int32>
    let displacements: UnsafeMutablePointer<Int32>
    private var done = false

    init(counts c: [Int], rank: Int) {
        counts = .allocate(capacity: max(c.count, 1))
        displacements = .allocate(capacity: max(c.count, 1))
        var at: Int32 = 0
        for (r, n) in c.enumerated() { counts[r] = Int32(n); displacements[r] = at; at += Int32(n) }
    }

    func wait() {
        guard !done else { return }
        let rc = MPI_Wait(&request, herd_mpi_status_ignore())
        if rc != herd_mpi_success() { MPIRuntime.abort(rank: -1, reason: "MPI_Wait failed with MPI error \(rc)") }
        done = true
    }

    deinit {
        wait()
        counts.deallocate()
        displacements.deallocate()
    }
}
