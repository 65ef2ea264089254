import Foundation

/// The entropy of the distribution a row of logits defines (PPO reports the
/// policy's per answer token): H(softmax(z)) = log Σ e^z − Σ softmax(z)·z,
/// shifted by the row's maximum so that no exponential overflows. Forward
/// only: nothing is trained on it.
public enum Entropy {
    public static func of(logits z: UnsafePointer<Float>, vocab: Int) -> Double {
        let m = FastMath.max(z, count: vocab)
        var total = 0.0, weighted = 0.0
        for j in 0..<vocab {
            let e = Foundation.exp(Double(z[j] - m))
            total += e
            weighted += e * Double(z[j] - m)
        }
        return Foundation.log(total) - weighted / total
    }
}
