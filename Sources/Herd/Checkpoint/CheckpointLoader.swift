import Foundation

/// Loads a checkpoint into one rank of any layout: every tensor is put
/// together from the pieces the manifest lists (whatever layout wrote
/// them), then this rank's piece is cut from it — one whole tensor in memory
/// at a time.
public enum CheckpointLoader {
    public static func load(dir: String, model: Llama, optimizer: AdamW) throws -> CheckpointManifest {
        let manifest = try CheckpointManifest.read(dir: dir)
        try manifest.verify(dir: dir)
        guard manifest.model == model.config else {
            throw CheckpointError.incompatible("it holds a model of shape \(manifest.model), this job's is \(model.config)")
        }
        let tensors = Dictionary(uniqueKeysWithValues: manifest.tensors.map { ($0.name, $0) })
        model.shards?.invalidate()
        for spec in model.layout.specs {
            guard let entry = tensors[spec.name] else {
                throw CheckpointError.incompatible("it has no tensor \(spec.name)")
            }
            guard entry.globalShape == spec.globalShape else {
                throw CheckpointError.incompatible("\(spec.name) is \(entry.globalShape) there, \(spec.globalShape) here")
            }
            let r = optimizer.range
            let a = max(spec.offset, r.lowerBound), b = min(spec.offset + spec.count, r.upperBound)
            // Under ZeRO-3 a rank keeps only its part of the weights.
            var weights = ("param", model.params.base, spec.offset..<(spec.offset + spec.count))
            if let shards = model.shards, let w = shards.weights {
                let o = shards.owned, lo = max(spec.offset, o.lowerBound)
                weights = ("param", w.base - o.lowerBound, lo..<max(lo, min(spec.offset + spec.count, o.upperBound)))
            }
            let targets: [(String, UnsafeMutablePointer<Float>, Range<Int>)] =
                [weights]
                + (a < b ? [("exp_avg", optimizer.m.base - r.lowerBound, a..<b),
                            ("exp_avg_sq", optimizer.v.base - r.lowerBound, a..<b)] : [])
            for (component, base, range) in targets where !range.isEmpty {
                let whole = try assemble(entry, component: component, dir: dir)
                try cut(whole, spec: spec, into: base, range: range, label: "\(spec.name) \(component)", dir: dir)
            }
        }
        optimizer.restore(step: manifest.optimizerSteps)
        return manifest
    }

    /// The global tensor of one component, from every piece of it (NaN where none).
    static func assemble(_ e: CheckpointManifest.TensorEntry, component: String, dir: String) throws -> [Float] {
        var whole = [Float](repeating: .nan, count: e.globalShape.reduce(1, *))
        let globalCols = e.globalShape.count == 2 ? e.globalShape[1] : 1
        for p in e.pieces where p.component == component {
            let blockCount = p.blockShape.reduce(1, *)
            let path = (dir as NSString).appendingPathComponent(p.file)
            guard p.flatStart >= 0, p.count > 0, p.flatStart + p.count <= blockCount, p.dtype == "fp32",
                  p.sliceStart >= 0 else {
                throw CheckpointError.corrupt((dir as NSString).appendingPathComponent(CheckpointManifest.fileName),
                                              "piece of \(e.name) in \(p.file) has impossible bounds")
            }
            var values = [Float](repeating: 0, count: p.count)
            try values.withUnsafeMutableBytes {
                try zstdReadFrame(path: path, offset: p.offset, size: p.compressedBytes, into: $0.baseAddress!, byteCount: p.count * 4)
            }
            let cols = p.blockShape.count == 2 ? p.blockShape[1] : 1
            for k in 0..<p.count {
                let i = p.flatStart + k
                let (r, c) = (i / cols, i % cols)
                let (gr, gc): (Int, Int)
                switch e.role {
                case .rowParallel: (gr, gc) = (r, c + p.sliceStart)
                case .columnParallel, .vocabParallel: (gr, gc) = (r + p.sliceStart, c)
                case .replicated: (gr, gc) = (r, c)
                }
                let g = gr * globalCols + gc
                guard g >= 0, g < whole.count else {
                    throw CheckpointError.corrupt(path, "a piece of \(e.name) lies outside its global shape")
                }
                whole[g] = values[k]
            }
        }
        return whole
    }

    /// Copies the elements of this rank's piece `spec` with flat indices in
    /// `range` from the global tensor into base[range].
    static func cut(_ whole: [Float], spec: ParameterSpec, into base: UnsafeMutablePointer<Float>,
                    range: Range<Int>, label: String, dir: String) throws {
        let cols = spec.shape.count == 2 ? spec.shape[1] : 1
        let globalCols = spec.globalShape.count == 2 ? spec.globalShape[1] : 1
        for i in range {
            let k = i - spec.offset
            let (r, c) = (k / cols, k % cols)
            let (gr, gc) = spec.splitAxis == 1 ? (r, c + spec.sliceStart) : (r + (spec.splitAxis == 0 ? spec.sliceStart : 0), c)
            let v = whole[gr * globalCols + gc]
            guard !v.isNaN else { throw CheckpointError.corrupt(dir, "no piece holds element \(k) of \(label)") }
            base[i] = v
        }
    }
}
