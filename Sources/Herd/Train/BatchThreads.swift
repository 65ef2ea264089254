import Foundation

/// Runs a micro-batch on several threads of one process: each thread takes
/// an equal share of the sequences, with its own activations and gradient
/// buffer and single-threaded BLAS, and the gradients are summed at the end
/// of the step. The model's products are small (a few hundred rows by a few
/// hundred columns), and there OpenBLAS's own threads spend more time waking
/// and yielding than computing; splitting the batch costs one buffer sum.
/// The sum runs in a fixed order, so results do not depend on scheduling.
public final class BatchThreads {
    public let model: Llama
    public let threads: Int
    public let sequences: Int
    public let seqLen: Int
    let perThread: Int
    let acts: [Activations]
    /// grads[0] is the model's own buffer; the others are summed into it.
    let grads: [FloatBuffer]

    /// `sequences` per micro-batch; uses the largest thread count ≤ `threads`
    /// that divides it.
    /// Threads that split `sequences` into equal parts of whole `unit`s
    /// (a reward model's pairs stay on one thread: unit 2).
    public static func threadCount(sequences: Int, threads: Int, unit: Int = 1) -> Int {
        let units = max(1, sequences / unit)
        var t = max(1, min(threads, units))
        while units % t != 0 { t -= 1 }
        return t
    }

    public init(model: Llama, sequences: Int, seqLen: Int, threads: Int, checkpoint: ActivationCheckpoint = .none) {
        let t = Self.threadCount(sequences: sequences, threads: threads, unit: model.config.scalarHead ? 2 : 1)
        self.model = model
        self.threads = t
        self.sequences = sequences
        self.seqLen = seqLen
        perThread = sequences / t
        acts = (0..<t).map { _ in model.makeActivations(batch: sequences / t, seqLen: seqLen, checkpoint: checkpoint) }
        grads = [model.grads] + (1..<t).map { _ in FloatBuffer(count: model.layout.total) }
        // Parallelism comes from the threads here; BLAS inside each stays serial.
        Matmul.threads = t > 1 ? 1 : Matmul.threads
    }

    public func zeroGradients() { for g in grads { g.zero() } }

    /// Packed examples separated by this token attend only within themselves.
    public var separator: TokenID? {
        get { acts.first?.separator }
        set { for a in acts { a.separator = newValue } }
    }

    /// Forward and backward of tokens/targets [sequences · seqLen], adding to
    /// each thread's gradients.
    public func accumulate(tokens: UnsafePointer<TokenID>, targets: UnsafePointer<TokenID>,
                           lossScale: Float) -> (lossSum: Double, counted: Int) {
        split { i, offset in
            model.forwardBackward(tokens: tokens + offset, targets: targets + offset,
                                  acts: acts[i], grads: grads[i], lossScale: lossScale)
        }
    }

    /// Forward only: summed loss and targets counted.
    public func loss(tokens: UnsafePointer<TokenID>, targets: UnsafePointer<TokenID>) -> (lossSum: Double, counted: Int) {
        split { i, offset in model.loss(tokens: tokens + offset, targets: targets + offset, acts: acts[i]) }
    }

    /// Sums every thread's gradients into the model's (in parallel over spans
    /// of the buffer, in a fixed order within each element).
    public func reduceGradients() {
        guard threads > 1 else { return }
        let n = model.layout.total
        let chunk = (n + threads - 1) / threads
        let bases = grads.map(\.base)
        DispatchQueue.concurrentPerform(iterations: threads) { c in
            let lo = c * chunk, hi = min(n, lo + chunk)
            guard lo < hi else { return }
            let dst = bases[0]
            for t in 1..<bases.count {
                let src = bases[t]
                for i in lo..<hi { dst[i] += src[i] }
            }
        }
    }

    private func split(_ body: (Int, Int) -> (lossSum: Double, counted: Int)) -> (lossSum: Double, counted: Int) {
        if threads == 1 { return body(0, 0) }
        let results = UnsafeMutableBufferPointer<(lossSum: Double, counted: Int)>.allocate(capacity: threads)
        defer { results.deallocate() }
        let stride = perThread * seqLen
        DispatchQueue.concurrentPerform(iterations: threads) { i in
            results[i] = body(i, i * stride)
        }
        return results.reduce((0, 0)) { ($0.0 + $1.lossSum, $0.1 + $1.counted) }
    }
}
