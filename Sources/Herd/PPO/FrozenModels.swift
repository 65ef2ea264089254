import Foundation

/// PPO's frozen models: the reference (the policy PPO starts from) and the
/// helpfulness and safety reward models. For each sampled answer they give
/// the reference's log-probability of every answer token (the KL penalty's
/// π₀) and both reward models' raw scores.
final class FrozenModels {
    let reference: Llama
    let rewards: RewardModels
    let checkpoint: ActivationCheckpoint

    /// What the frozen models say of one answer.
    struct Scores {
        var referenceLogProbs: [Float]
        /// The reward models' scores before σ.
        var helpful: Float, safety: Float
    }

    init(manifest m: JobManifest, placement: ModelPlacement) throws {
        reference = try ModelFiles.loadModel(m.initFrom!, placement: placement)
        rewards = try RewardModels(helpfulness: m.ppo!.helpfulness, safety: m.ppo!.safety, placement: placement)
        checkpoint = m.activationCheckpoint
    }

    /// Scores of `part`'s answers, in order: each model runs the part as
    /// one padded block.
    func score(_ part: [Rollout], lengthMultiple: Int) throws -> [Scores] {
        guard !part.isEmpty else { return [] }
        let padded = RolloutBatch(part, lengthMultiple: lengthMultiple)
        let ref = reference.tokenLogProbs(tokens: padded.tokens, targets: padded.targets, acts: padded.activations(reference, checkpoint: checkpoint))
        let rewards = try self.rewards.rawScores(part.map { ($0.prompt.dialogue, $0.text) })
        return zip(part.indices, rewards).map { k, r in
            Scores(referenceLogProbs: padded.rows[k].map { ref[$0] }, helpful: r.helpful, safety: r.safety)
        }
    }
}

/// `ppo.placement: separate`: the frozen models on a group of ranks of
/// their own (as OpenRLHF places reference and reward models), joined to
/// the trainers by the job's world communicator. Each iteration:
///
/// 1. the trainers' first rank broadcasts "score step s" (or "stop");
/// 2. every data rank's first tensor rank contributes its rollouts — index,
///    prompt tokens, answer tokens — to an all-gather over the world;
/// 3. the frozen group scores them all, split by tensor parallelism, in the
///    same blocks the trainers would have (each data rank's share of each
///    mini-batch), while the trainers run the policy and the value model;
/// 4. the group's first rank broadcasts every answer's scores back.
///
/// Token ids travel as floats (exact below 2²⁴). A frozen rank waits for
/// the next request in a barrier that keeps its heartbeat's progress, since
/// the trainers' updates and checkpoints are the job's progress, not a hang.
final class FrozenGroupLink {
    /// Every rank of the job.
    let world: Communicator
    /// The world rank of the frozen group's first rank (after the trainers).
    let firstFrozen: Int
    /// Whether this trainer sends its data rank's rollouts (its tensor group's first rank).
    let sends: Bool

    init(world: Communicator, firstFrozen: Int, sends: Bool) {
        self.world = world; self.firstFrozen = firstFrozen; self.sends = sends
    }

    /// The barrier every request and the stop begin with, then the command.
    private func command(_ c: Float, step: Int, waiting: () throws -> Void = {}) throws -> (command: Float, step: Int) {
        try world.barrier(interval: 1, waiting: waiting)
        var message: [Float] = [c, Float(step)]
        world.broadcast(&message, count: 2, root: 0)
        return (message[0], Int(message[1]))
    }

    /// Trainers: this iteration's rollouts to the frozen group.
    func request(_ batch: [Rollout], step: Int) throws {
        _ = try command(1, step: step)
        var mine: [Float] = []
        if sends {
            for r in batch {
                mine += [Float(r.index), Float(r.promptTokens.count), Float(r.answer.count)]
                mine += r.promptTokens.map(Float.init) + r.answer.map(Float.init)
            }
        }
        _ = allGather(mine)
    }

    /// A rollout the frozen group sent no scores for (the protocol always sends every one).
    struct MissingScores: Error, CustomStringConvertible {
        let rollout: Int
        var description: String { "the frozen models' group sent no scores for rollout \(rollout)" }
    }

    /// Trainers: the scores the frozen group sent back, by rollout index.
    func receive() -> [Int: FrozenModels.Scores] {
        let data = broadcastFromGroup([])
        var out: [Int: FrozenModels.Scores] = [:], i = 0
        while i < data.count {
            let g = Int(data[i]), n = Int(data[i + 1])
            out[g] = FrozenModels.Scores(referenceLogProbs: Array(data[(i + 4)..<(i + 4 + n)]), helpful: data[i + 2], safety: data[i + 3])
            i += 4 + n
        }
        return out
    }

    /// Trainers, at the end of the run (or a stop they agreed on): the frozen group leaves its loop.
    func release(step: Int, stopped: Bool) throws { _ = try command(stopped ? -1 : 0, step: step) }

    /// The frozen group: scores requests until the trainers release it;
    /// returns whether they stopped on request (rather than finished).
    static func serve(manifest m: JobManifest, world: Communicator, group: Communicator, firstFrozen: Int,
                      heartbeat: Heartbeat?, log: (String) -> Void) throws -> Bool {
        let link = FrozenGroupLink(world: world, firstFrozen: firstFrozen, sends: false)
        let spec = m.ppo!
        let models = try FrozenModels(manifest: m, placement: ModelPlacement(tensor: group, precision: m.precision, trains: false))
        let (_, tokenizer) = try ModelFiles.loadModelAndTokenizer(m.initFrom!, role: "policy", placement: ModelPlacement(tensor: group, trains: false))
        let sampler = try ChatSampler(model: models.reference, tokenizer: tokenizer)
        let prompts = try JSONLines.read(PromptRecord.self, path: m.data.prompts!)
        // Each data rank's share of each mini-batch: the blocks the trainers score colocated.
        let share = spec.miniBatch / m.parallelism.data
        if group.rank == 0 { log("frozen models on \(group.size) rank(s) of their own: the reference and both reward models, split by tensor parallelism") }
        var step = 0
        while true {
            let c = try link.command(0, step: 0) { heartbeat?.progress(step: step, phase: "frozen models waiting") }
            guard c.command > 0 else { return c.command < 0 }
            step = c.step
            heartbeat?.progress(step: step, phase: "scoring")
            let data = link.allGather([])
            var batch: [Rollout] = [], i = 0
            while i < data.count {
                let g = Int(data[i]), p = Int(data[i + 1]), a = Int(data[i + 2])
                let promptTokens = data[(i + 3)..<(i + 3 + p)].map { TokenID($0) }, answer = data[(i + 3 + p)..<(i + 3 + p + a)].map { TokenID($0) }
                let prompt = prompts[EpochOrder.item(seed: m.seed, index: step * spec.rollouts + g, count: prompts.count)]
                batch.append(Rollout(index: g, prompt: prompt, promptTokens: promptTokens, answer: answer, text: sampler.text(answer)))
                i += 3 + p + a
            }
            batch.sort { $0.index < $1.index }
            var out: [Float] = []
            var start = 0
            while start < batch.count {
                let block = Array(batch[start..<min(start + share, batch.count)])
                for (r, s) in zip(block, try models.score(block, lengthMultiple: 1)) {
                    out += [Float(r.index), Float(s.referenceLogProbs.count), s.helpful, s.safety] + s.referenceLogProbs
                }
                start += block.count
            }
            _ = link.broadcastFromGroup(out)
        }
    }

    /// Every rank's floats concatenated in rank order (counts first).
    private func allGather(_ mine: [Float]) -> [Float] {
        var counts = [Float](repeating: 0, count: world.size)
        var n = Float(mine.count)
        world.allGather(send: &n, receive: &counts, countPerRank: 1)
        let sizes = counts.map { Int($0) }
        var all = [Float](repeating: 0, count: sizes.reduce(0, +))
        let offset = sizes[..<world.rank].reduce(0, +)
        for (k, v) in mine.enumerated() { all[offset + k] = v }
        all.withUnsafeMutableBufferPointer { buffer in
            world.allGather(send: buffer.baseAddress! + offset, receive: buffer.baseAddress!, counts: sizes)
        }
        return all
    }

    /// The frozen group's first rank's floats on every rank.
    private func broadcastFromGroup(_ mine: [Float]) -> [Float] { world.broadcast(mine, root: firstFrozen) }
}
