/// What a job computes in (`precision:`). `fp32` throughout, or `bf16`
/// mixed precision as the anchors train: the weights a product uses and
/// the activations kept for backward are bfloat16 values, while the master
/// weights, gradients, AdamW state and every accumulation stay fp32.
///
/// On this machine Debian's OpenBLAS has no bf16 GEMM, so bf16 values are
/// held widened to fp32 where a kernel reads them: a segment's weights are
/// rounded into a working copy before use, a kernel's output is rounded in
/// place, and what backward needs is stored per layer as 16-bit halves and
/// widened again when backward reaches the layer. The memory saved is the
/// kept activations' (the residual stream and the norms' rstd stay fp32);
/// the arithmetic is sgemm's, so the cost is the rounding and widening
/// passes (see benchmarks.md).
public enum Precision: String, Codable, Sendable, CaseIterable {
    case fp32, bf16
}
