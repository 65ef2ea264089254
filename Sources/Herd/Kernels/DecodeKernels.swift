import Foundation
import CKernels

/// Generation's linear layers and attention over the KV cache: the
/// AVX-512 kernels of `Sources/CKernels` where this CPU has AVX-512, else
/// OpenBLAS and the Swift loops. The weights of a decode step do not stay
/// in cache, and OpenBLAS reads them in a way the prefetcher follows badly
/// (its sgemv, four rows at once) or repacks them on every call (its sgemm);
/// see docs/generation.md#speed for what each costs.
public enum DecodeKernels {
    /// Whether generation uses the AVX-512 kernels: the CPU has them and
    /// `HERD_KERNELS=blas` is not set (which keeps OpenBLAS, to compare).
    public static var enabled: Bool = available && ProcessInfo.processInfo.environment["HERD_KERNELS"] != "blas"

    /// This CPU runs them.
    public static var available: Bool { herd_kernels_available() != 0 }

    /// The threads a kernel uses: the generator's, but never more than the
    /// process was given for its products (`Matmul.threads`, a rank's share
    /// of the cores): the kernels' helpers spin between calls, so a rank
    /// must not run more of them than it has cores.
    static func threads(_ asked: Int) -> Int { max(1, min(asked, Matmul.threads)) }

    /// y[rows, out] = x[rows, in] · W[out, in]ᵀ (+ y when `accumulate`), on up to `threads` threads.
    @inline(__always)
    public static func linear(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                       rows: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = false, threads: Int) {
        guard enabled else {
            Matmul.linearForward(y: y, x: x, w: w, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, accumulate: accumulate)
            return
        }
        herd_linear(y, x, w, Int32(rows), Int32(inFeatures), Int32(outFeatures), accumulate ? 1 : 0, Int32(Self.threads(threads)))
    }

    /// Decode attention (CKernels.h's herd_attend): `scores` holds `threads` × `maxLen` floats.
    static func attend(out: UnsafeMutablePointer<Float>, outStride: Int, q: UnsafePointer<Float>, qStride: Int,
                       keys: UnsafePointer<Float>, values: UnsafePointer<Float>, cacheOffsets: [Int], positions: [Int32],
                       heads: Int, kvHeads: Int, headDim: Int, headStride: Int,
                       scores: UnsafeMutablePointer<Float>, maxLen: Int, threads: Int) {
        herd_attend(out, Int32(outStride), q, Int32(qStride), keys, values, cacheOffsets, positions,
                    Int32(positions.count), Int32(heads), Int32(kvHeads), Int32(headDim), headStride,
                    scores, Int32(maxLen), Int32(Self.threads(threads)))
    }
}
