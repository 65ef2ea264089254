import ArgumentParser
import Foundation
import Herd

/// `herd checkpoint ls|inspect|verify`.
struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint", abstract: "List, inspect and verify checkpoints.",
        subcommands: [List.self, Inspect.self, Verify.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "The checkpoints of a run directory.")
        @Argument(help: "The run directory.") var runDirectory: String

        func run() throws {
            let store = CheckpointStore(runDirectory: runDirectory)
            let latest = store.latest()
            let steps = store.steps()
            if steps.isEmpty { print("\(store.root): no complete checkpoints") }
            for s in steps {
                let dir = store.path(step: s)
                let m = try? CheckpointManifest.read(dir: dir)
                let bytes = m?.files.reduce(0) { $0 + $1.bytes } ?? 0
                print("\(dir)\(s == latest ? "  (LATEST)" : "")  step \(s), \(m.map { "data \($0.data) × tensor \($0.tensor)\(ParallelContext.stageLabel($0.stage))" } ?? "?"), \(bytes) bytes")
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Tensors, shapes, dtypes, sizes and compression of a checkpoint.")
        @Argument(help: "A checkpoint directory (RUN/checkpoints/step-N).") var path: String

        func run() throws {
            let m: CheckpointManifest
            do { m = try CheckpointManifest.read(dir: path) } catch { fail(error) }
            print("\(path): job \(m.job), step \(m.step), \(m.sequencesConsumed) sequences consumed, AdamW step \(m.optimizerSteps)")
            print("written at data \(m.data) × tensor \(m.tensor)\(ParallelContext.stageLabel(m.stage)); model \(m.model.parameterCount) parameters")
            var raw = 0, packed = 0
            for t in m.tensors {
                let comps = Dictionary(grouping: t.pieces, by: \.component)
                let desc = comps.keys.sorted().map { c -> String in
                    let ps = comps[c]!
                    let r = ps.reduce(0) { $0 + $1.byteCount }, z = ps.reduce(0) { $0 + $1.compressedBytes }
                    raw += r; packed += z
                    return "\(c) \(ps.first!.dtype) \(ps.count) piece(s) \(r)→\(z) B"
                }.joined(separator: "; ")
                print("  \(t.name) \(t.globalShape) \(t.role.rawValue): \(desc)")
            }
            print(String(format: "total %d bytes raw, %d compressed (ratio %.2f); files: %@", raw, packed,
                         Double(raw) / Double(max(packed, 1)), m.files.map(\.name).joined(separator: ", ")))
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check every file's size and checksum, and decode every piece.")
        @Argument(help: "A checkpoint directory (RUN/checkpoints/step-N).") var path: String

        func run() throws {
            do {
                let m = try CheckpointManifest.read(dir: path)
                try m.verify(dir: path)
                for t in m.tensors {
                    for p in t.pieces {
                        var buf = [UInt8](repeating: 0, count: p.byteCount)
                        try buf.withUnsafeMutableBytes {
                            try zstdReadFrame(path: (path as NSString).appendingPathComponent(p.file), offset: p.offset,
                                              size: p.compressedBytes, into: $0.baseAddress!, byteCount: p.byteCount)
                        }
                    }
                }
                print("\(path): ok — \(m.files.count) files, \(m.tensors.reduce(0) { $0 + $1.pieces.count }) pieces")
            } catch { fail(error) }
        }
    }
}
