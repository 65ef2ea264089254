import Foundation

/// `herd rlhf annotate`: two answers per prompt from a policy (at two
/// temperatures, as the paper varied them; a second answer equal to the
/// first is drawn again, hotter), compared by the annotator, the
/// labelled comparisons appended to the pool as batch `batch`. Every
/// labelled comparison is on disk (appended and flushed) before the next
/// request is sent, so an annotator that crashes, hangs or answers badly
/// stops the step with an error naming the request and loses nothing; run
/// again, the step skips the prompts this batch already holds.
public struct AnnotationStep {
    public var policy: String
    public var prompts: String
    public var pool: String
    public var batch: String
    public var annotator: [String]
    /// Generating on a tensor group: the leader of its other ranks.
    public var leader: TensorGroupLeader?
    public var temperatures: (Double, Double) = (0.7, 1.0)
    public var maxNewTokens = 64
    public var timeout = 60.0
    public var seed: UInt64 = 1

    public init(policy: String, prompts: String, pool: String, batch: String, annotator: [String]) {
        self.policy = policy; self.prompts = prompts; self.pool = pool; self.batch = batch; self.annotator = annotator
    }

    public struct Result: Sendable { public var labelled: Int; public var skipped: Int }

    public func run(log: (String) -> Void = { _ in }) throws -> Result {
        let all = try JSONLines.read(PromptRecord.self, path: prompts) { (p: PromptRecord) throws(RecordError) in
            try JSONLines.checkTurns(p.dialogue, endsWithAssistant: false)
            if p.dialogue.last?.role != .user { throw RecordError(file: "", line: 0, message: "dialogue: a prompt ends with the user's turn") }
        }
        let done = FileManager.default.fileExists(atPath: pool)
            ? Set(try JSONLines.comparisons(path: pool).filter { $0.batch == batch }.map(\.promptID)) : []
        // Each prompt keeps its place in the file: its answers draw from
        // streams of (seed, place), so a rerun that labels only the rest
        // draws what one uninterrupted run would have.
        let todo = all.enumerated().filter { !done.contains($0.element.id) }
        log("\(all.count) prompts, \(done.count) already labelled in batch \(batch), \(todo.count) to go")
        guard !todo.isEmpty else { return Result(labelled: 0, skipped: done.count) }

        let sampler = try ChatSampler.load(policy, role: "policy", leader: leader)
        func draw(_ items: [Int], temperature: Double, round: UInt64) throws -> [String] {
            try sampler.samples(items.map { todo[$0].element.dialogue }, k: 1, temperature: temperature, maxNewTokens: maxNewTokens,
                                seed: { i, _ in SplitMix64.mix(SplitMix64.mix(seed, round), UInt64(todo[items[i]].offset)) }).map { $0[0] }
        }
        let everyone = Array(todo.indices)
        let a = try draw(everyone, temperature: temperatures.0, round: 0)
        var b = try draw(everyone, temperature: temperatures.1, round: 1)
        // Two identical answers teach a reward model nothing: draw the
        // second again, hotter, a few times.
        for attempt in 1...3 {
            let same = everyone.filter { a[$0] == b[$0] }
            if same.isEmpty { break }
            let again = try draw(same, temperature: temperatures.1 * pow(1.5, Double(attempt)), round: UInt64(1 + attempt))
            for (k, i) in same.enumerated() { b[i] = again[k] }
        }
        log("the answers: " + sampler.meter.summary)

        let file = try AppendOnlyFile(path: pool)
        let annotator = try Annotator(command: annotator)
        defer { annotator.stop() }
        for (i, (_, p)) in todo.enumerated() {
            let id = "\(batch)/\(p.id)"
            let answer = try annotator.compare(.init(id: id, dialogue: p.dialogue, responses: [a[i], b[i]]), timeout: timeout)
            let c = Comparison(promptID: p.id, dialogue: p.dialogue, responses: [a[i], b[i]], chosen: answer.chosen,
                               degree: answer.degree, safe: answer.safe, batch: batch, policy: policy)
            try file.append(try JSONLines.line(c))
        }
        return Result(labelled: todo.count, skipped: done.count)
    }
}
