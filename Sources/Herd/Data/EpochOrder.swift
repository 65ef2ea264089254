/// The order in which an epoch visits `count` items: an affine map
/// p ↦ (a·p + b) mod count with a coprime to count, drawn from (seed,
/// epoch) — a permutation computed per index, with no table to keep.
public enum EpochOrder {
    /// The item that global draw `index` reads (epoch = index / count).
    public static func item(seed: UInt64, index: Int, count n: Int) -> Int {
        let epoch = index / n, p = index % n
        let h = SplitMix64.mix(seed ^ 0x5F7_D3A0, UInt64(epoch))
        var a = Int(h % UInt64(n)) | 1
        while gcd(a, n) != 1 { a += 1 }
        let b = Int((h >> 32) % UInt64(n))
        return (a % n * p + b) % n
    }

    static func gcd(_ x: Int, _ y: Int) -> Int { y == 0 ? x : gcd(y, x % y) }
}
