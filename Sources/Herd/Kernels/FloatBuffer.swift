import Foundation

/// A fixed-size, 64-byte-aligned array of fp32 values that kernels read and
/// write through raw pointers. Parameters, gradients, optimizer moments and
/// activations all live in these, so that one flat buffer can later be
/// all-reduced, sharded or checkpointed as a single span.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let base: UnsafeMutablePointer<Float>
    /// Backed by its own anonymous mapping, whose pages the kernel provides
    /// (zeroed) when first touched and takes back on `release`.
    public let isPaged: Bool

    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer: negative count \(count)")
        self.count = count
        isPaged = false
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }

    /// A buffer that holds memory only where it is in use: ZeRO-3 keeps the
    /// whole model's address range but only the layers gathered at the
    /// moment resident, so every kernel still indexes one flat layout.
    public init(pagedCount count: Int) {
        precondition(count >= 0, "FloatBuffer: negative count \(count)")
        self.count = count
        isPaged = true
        let bytes = max(count, 1) * 4
        guard let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              raw != MAP_FAILED else {
            fatalError("FloatBuffer: cannot map \(bytes) bytes of address space (errno \(errno))")
        }
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Zeroes [range] and, for a paged buffer, gives the pages wholly inside
    /// it back to the kernel (resident memory falls by that much).
    public func release(_ range: Range<Int>) {
        guard isPaged else { (base + range.lowerBound).update(repeating: 0, count: range.count); return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE))) / 4
        let first = (range.lowerBound + page - 1) / page * page, last = range.upperBound / page * page
        guard first < last else { (base + range.lowerBound).update(repeating: 0, count: range.count); return }
        (base + range.lowerBound).update(repeating: 0, count: first - range.lowerBound)
        (base + last).update(repeating: 0, count: range.upperBound - last)
        madvise(UnsafeMutableRawPointer(base + first), (last - first) * 4, MADV_DONTNEED)
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { base.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit {
        if isPaged { munmap(UnsafeMutableRawPointer(base), max(count, 1) * 4) } else { UnsafeMutableRawPointer(base).deallocate() }
    }

    @inline(__always) public subscript(i: Int) -> Float {
        get { base[i] }
        set { base[i] = newValue }
    }

    public func zero() {
        if isPaged { release(0..<count) } else { base.update(repeating: 0, count: count) }
    }

    public func copy(from other: FloatBuffer) {
        precondition(other.count == count)
        base.update(from: other.base, count: count)
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: base, count: count)) }
}

/// A tiny buffer of Int32 token ids (targets use -1 for "ignore").
public typealias TokenID = Int32
