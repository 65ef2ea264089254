import Foundation
import CKernels

/// Generation's linear layers and attention over the KV cache: the kernels
/// of `Sources/CKernels`, built for AVX-512 and for AVX2, where this CPU
/// runs one of them; else OpenBLAS and the Swift loops. The weights of a
/// decode step do not stay in cache, and OpenBLAS reads them in a way the
/// prefetcher follows badly (its sgemv, four rows at once) or repacks them
/// on every call (its sgemm); see docs/generation.md#the-decode-kernels.
public enum DecodeKernels {
    /// The instruction sets the kernels are built for.
    public enum InstructionSet: Int32, Sendable, CaseIterable, CustomStringConvertible {
        case avx2 = 1, avx512 = 2
        public var description: String { self == .avx2 ? "AVX2" : "AVX-512" }
    }

    /// The sets this CPU runs, AVX2 first.
    public static var available: [InstructionSet] {
        InstructionSet.allCases.filter { $0.rawValue <= herd_kernels_available() }
    }

    /// What generation uses: the best set this CPU runs; `HERD_KERNELS=avx2`
    /// takes AVX2 on an AVX-512 CPU, and `HERD_KERNELS=blas` (or a CPU
    /// with neither) OpenBLAS and the Swift loops (nil). Other values are
    /// ignored.
    public static var instructionSet: InstructionSet? = {
        let best = available.last
        switch ProcessInfo.processInfo.environment["HERD_KERNELS"] {
        case "blas": return nil
        case "avx2": return available.first
        default: return best
        }
    }()

    /// The threads a kernel uses: the generator's, but never more than the
    /// process was given for its products (`Matmul.threads`, a rank's share
    /// of the cores): the kernels' helpers spin between calls, so a rank
    /// must not run more of them than it has cores.
    static func threads(_ asked: Int) -> Int { max(1, min(asked, Matmul.threads)) }

    /// y[rows, out] = x[rows, in] · W[out, in]ᵀ (+ y when `accumulate`), on up to `threads` threads.
    @inline(__always)
    public static func linear(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                              rows: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = false, threads: Int) {
        guard let isa = instructionSet else {
            Matmul.linearForward(y: y, x: x, w: w, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, accumulate: accumulate)
            return
        }
        herd_linear(y, x, w, Int32(rows), Int32(inFeatures), Int32(outFeatures), accumulate ? 1 : 0, Int32(Self.threads(threads)), isa.rawValue)
    }

    /// Whether `attend` takes heads this wide (the kernel keeps a query head in registers: at most 256 floats).
    static func attends(headDim: Int) -> Bool { instructionSet != nil && headDim <= 256 }

    /// Decode attention (CKernels.h's herd_attend): `scores` holds `threads` × `maxLen` floats.
    static func attend(out: UnsafeMutablePointer<Float>, outStride: Int, q: UnsafePointer<Float>, qStride: Int,
                       keys: UnsafePointer<Float>, values: UnsafePointer<Float>, cacheOffsets: [Int], positions: [Int32],
                       heads: Int, kvHeads: Int, headDim: Int, headStride: Int,
                       scores: UnsafeMutablePointer<Float>, maxLen: Int, threads: Int) {
        guard let isa = instructionSet, attends(headDim: headDim) else { preconditionFailure("attend without a kernel for head width \(headDim)") }
        herd_attend(out, Int32(outStride), q, Int32(qStride), keys, values, cacheOffsets, positions,
                    Int32(positions.count), Int32(heads), Int32(kvHeads), Int32(headDim), headStride,
                    scores, Int32(maxLen), Int32(Self.threads(threads)), isa.rawValue)
    }
}
