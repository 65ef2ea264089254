/// A fixed-size, 64-byte-aligned array of fp32 values that kernels read and
/// write through raw pointers. Parameters, gradients, optimizer moments and
/// activations all live in these, so that one flat buffer can later be
/// all-reduced, sharded or checkpointed as a single span.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let base: UnsafeMutablePointer<Float>

    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer: negative count \(count)")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { base.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    @inline(__always) public subscript(i: Int) -> Float {
        get { base[i] }
        set { base[i] = newValue }
    }

    public func zero() { base.update(repeating: 0, count: count) }

    public func copy(from other: FloatBuffer) {
        precondition(other.count == count)
        base.update(from: other.base, count: count)
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: base, count: count)) }
}

/// A tiny buffer of Int32 token ids (targets use -1 for "ignore").
public typealias TokenID = Int32
