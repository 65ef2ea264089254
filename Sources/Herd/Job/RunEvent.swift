import Foundation

/// One line of a run's events.jsonl: what every writer (the trainer, PPO,
/// the coordinator) writes and every reader (the coordinator, `herd
/// status`/`watch`, curves, the pipeline, `herd serve`, the bench) reads.
///
/// The line is a flat JSON object, `event` naming the kind and `time` the
/// Unix time, as earlier runs wrote it, so old run directories read the
/// same. Each kind fills the fields its constructor below takes; the rest
/// stay absent. Doubles are written by `JSONEncoder` (the shortest digits
/// that read back to the same bits) and read by `JSONDecoder`, so a figure
/// read back equals the one written; `JSONSerialization`'s reader does not
/// (it misreads about one double in five). A non-finite figure (a
/// held-out loss with no held-out data) is written as absent.
public struct RunEvent: Codable, Equatable, Sendable {
    /// An event's kind. A struct, not an enum: a kind a newer Herd writes
    /// still reads here.
    public struct Kind: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(from decoder: Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
        public func encode(to encoder: Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(rawValue) }
        public var description: String { rawValue }

        // The workers'.
        public static let start = Kind(rawValue: "start"), resume = Kind(rawValue: "resume"), initialized = Kind(rawValue: "init")
        public static let step = Kind(rawValue: "step"), eval = Kind(rawValue: "eval"), checkpoint = Kind(rawValue: "checkpoint")
        public static let stopped = Kind(rawValue: "stopped"), end = Kind(rawValue: "end")
        /// A rank's checkpoint found no space (that rank's, not only rank 0's).
        public static let checkpointFailed = Kind(rawValue: "checkpoint_failed")
        // A prepare job's ranks': a unit of the corpus tokenized; the units merged into the dataset.
        public static let unit = Kind(rawValue: "unit"), merge = Kind(rawValue: "merge")
        // The coordinator's.
        public static let launch = Kind(rawValue: "launch"), restart = Kind(rawValue: "restart"), requeue = Kind(rawValue: "requeue")
        public static let shrink = Kind(rawValue: "shrink"), grow = Kind(rawValue: "grow"), cancelled = Kind(rawValue: "cancelled")
        public static let succeeded = Kind(rawValue: "succeeded"), failed = Kind(rawValue: "failed")
        /// A coordinator took over a running attempt whose coordinator had gone.
        public static let adopt = Kind(rawValue: "adopt")
    }

    public var event: Kind
    /// Unix time of writing (absent only in lines some other tool wrote).
    public var time: Double?

    // start
    public var job: String?
    public var jobKind: String?
    public var parameters: Int?
    public var steps: Int?
    public var tokensPerStep: Int?
    public var dataParallel: Int?
    public var tensorParallel: Int?
    public var zero: Int?
    public var trainTokens: Int?
    public var validationTokens: Int?
    public var rollouts: Int?
    public var miniBatch: Int?
    public var beta: Double?
    public var prompts: Int?
    // resume, init, stopped
    public var checkpoint: String?
    public var writtenBy: String?
    public var from: String?
    public var valueFrom: String?
    // step (a PPO iteration's carry its figures too)
    public var step: Int?
    public var loss: Double?
    public var lr: Double?
    public var gradNorm: Double?
    public var tokensPerSecond: Double?
    public var reward: Double?
    public var kl: Double?
    public var policyLoss: Double?
    public var valueLoss: Double?
    public var clipFraction: Double?
    public var entropy: Double?
    public var responseLength: Double?
    public var stepSeconds: Double?
    public var rolloutSeconds: Double?
    /// Answer tokens the whole job generated per second of its rollouts.
    public var rolloutTokensPerSecond: Double?
    public var scoringSeconds: Double?
    public var updateSeconds: Double?
    // eval (a reward model's accuracy, overall and by preference degree)
    public var validationLoss: Double?
    /// A mixture of datasets (data.mix): each source's held-out loss, and the
    /// share of the sequences trained so far that each source gave.
    public var sourceLosses: [String: Double]?
    public var mixProportions: [String: Double]?
    public var accuracy: Double?
    public var pairs: Int?
    public var accuracySignificantlyBetter: Double?
    public var accuracyBetter: Double?
    public var accuracySlightlyBetter: Double?
    public var accuracyNegligiblyBetter: Double?
    /// The held-out pairs of each preference degree the accuracies are over.
    public var pairsByDegree: [String: Int]?
    // checkpoint; a prepare job's start (its input bytes), resume (those
    // already prepared), unit and merge
    public var path: String?
    public var bytes: Int?
    public var seconds: Double?
    // checkpoint_failed (also path, bytes needed, step, rank, reason)
    public var bytesFree: Int?
    public var filesystem: String?
    // unit, merge
    public var unit: Int?
    public var rank: Int?
    public var documents: Int?
    public var tokens: Int?
    public var duplicates: Int?
    // step (rank 0's) and end: peak resident memory; end also the peak of every rank's
    public var peakResidentBytes: Int?
    public var peakResidentBytesMax: Int?
    /// The smallest rank's peak (the end event), so that every rank's is known to lie in [min, max].
    public var peakResidentBytesMin: Int?
    // end
    public var trainLoss: Double?
    public var trainSeconds: Double?
    // the coordinator's events
    public var jobID: Int?
    public var attempt: Int?
    public var launcher: String?
    public var launchID: String?
    public var world: Int?
    public var data: Int?
    public var tensor: Int?
    public var reason: String?
    public var restart: Int?
    public var fromStep: Int?
    public var checkpointStep: Int?
    public var backoffSeconds: Double?
    public var hungAt: Double?
    public var lost: [String]?
    public var hosts: [String]?

    enum CodingKeys: String, CodingKey {
        case event, time, job, jobKind = "kind", parameters, steps, tokensPerStep = "tokens_per_step"
        case dataParallel = "data_parallel", tensorParallel = "tensor_parallel", zero
        case trainTokens = "train_tokens", validationTokens = "validation_tokens", rollouts, miniBatch = "mini_batch", beta, prompts
        case checkpoint, writtenBy = "written_by", from, valueFrom = "value_from"
        case step, loss, lr, gradNorm = "grad_norm", tokensPerSecond = "tokens_per_s", reward, kl
        case policyLoss = "policy_loss", valueLoss = "value_loss", clipFraction = "clip_fraction", entropy
        case responseLength = "response_length", stepSeconds = "step_seconds", rolloutSeconds = "rollout_seconds"
        case rolloutTokensPerSecond = "rollout_tokens_per_s"
        case scoringSeconds = "scoring_seconds", updateSeconds = "update_seconds"
        case validationLoss = "val_loss", sourceLosses = "source_val_loss", mixProportions = "mix_proportions", accuracy, pairs
        case accuracySignificantlyBetter = "accuracy_significantly_better", accuracyBetter = "accuracy_better"
        case accuracySlightlyBetter = "accuracy_slightly_better", accuracyNegligiblyBetter = "accuracy_negligibly_better"
        case pairsByDegree = "pairs_by_degree"
        case path, bytes, seconds, bytesFree = "bytes_free", filesystem, unit, rank, documents, tokens, duplicates
        case peakResidentBytes = "peak_rss", peakResidentBytesMax = "peak_rss_max", peakResidentBytesMin = "peak_rss_min", trainLoss = "train_loss", trainSeconds = "train_seconds"
        case jobID = "job_id", attempt, launcher, launchID = "launch_id", world, data, tensor, reason, restart
        case fromStep = "from_step", checkpointStep = "checkpoint_step", backoffSeconds = "backoff_s", hungAt = "hung_at", lost, hosts
    }

    /// An event of `kind` with no fields yet; no `time` means "when written".
    public init(_ kind: Kind, time: Double? = nil) {
        event = kind
        self.time = time
    }

    /// A reward model's held-out accuracy on pairs of one preference degree.
    public func accuracy(_ degree: PreferenceDegree) -> Double? {
        switch degree {
        case .significantlyBetter: return accuracySignificantlyBetter
        case .better: return accuracyBetter
        case .slightlyBetter: return accuracySlightlyBetter
        case .negligiblyBetter: return accuracyNegligiblyBetter
        }
    }

    /// The held-out accuracy over some degrees together (weighted by their pairs).
    public func accuracy(over degrees: [PreferenceDegree]) -> Double? {
        guard let pairsByDegree else { return nil }
        var right = 0.0, n = 0
        for d in degrees {
            guard let a = accuracy(d), let k = pairsByDegree[d.rawValue], k > 0 else { continue }
            right += a * Double(k); n += k
        }
        return n > 0 ? right / Double(n) : nil
    }

    public mutating func setAccuracy(_ value: Double?, _ degree: PreferenceDegree) {
        switch degree {
        case .significantlyBetter: accuracySignificantlyBetter = value
        case .better: accuracyBetter = value
        case .slightlyBetter: accuracySlightlyBetter = value
        case .negligiblyBetter: accuracyNegligiblyBetter = value
        }
    }
}

// MARK: - Reading and writing one line

extension RunEvent {
    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }

    /// The event as one JSON line (no newline). Non-finite doubles are
    /// dropped first: JSON has no NaN, and "not measured" is what they mean.
    public func line() -> Data {
        var e = self
        e.dropNonFinite()
        // Only a field the encoder cannot represent could throw, and none is left.
        return (try? Self.encoder().encode(e)) ?? Data("{\"event\":\"\(event.rawValue)\"}".utf8)
    }

    /// One line of events.jsonl, or nil for a line that is not an event
    /// (torn, or not JSON).
    public static func decode<D: DataProtocol>(line: D) -> RunEvent? {
        try? JSONDecoder().decode(RunEvent.self, from: Data(line))
    }

    /// Every event of the file at `path`, in order; a line that does not
    /// read (a torn write) is skipped. A missing file is no events.
    public static func readAll(path: String) throws -> [RunEvent] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.split(separator: 0x0A).compactMap { decode(line: $0) }
    }

    mutating func dropNonFinite() {
        let doubles: [WritableKeyPath<RunEvent, Double?>] = [
            \.beta, \.loss, \.lr, \.gradNorm, \.tokensPerSecond, \.reward, \.kl, \.policyLoss, \.valueLoss, \.clipFraction,
            \.entropy, \.responseLength, \.stepSeconds, \.rolloutSeconds, \.rolloutTokensPerSecond, \.scoringSeconds, \.updateSeconds, \.validationLoss,
            \.accuracy, \.accuracySignificantlyBetter, \.accuracyBetter, \.accuracySlightlyBetter, \.accuracyNegligiblyBetter,
            \.seconds, \.trainLoss, \.trainSeconds, \.backoffSeconds, \.hungAt,
        ]
        for k in doubles where self[keyPath: k].map({ !$0.isFinite }) ?? false { self[keyPath: k] = nil }
        sourceLosses = sourceLosses?.filter { $0.value.isFinite }
        if let t = time, !t.isFinite { time = nil }
    }
}

// MARK: - The events each writer writes

extension RunEvent {
    public static func trainStep(step: Int, loss: Double, lr: Double, gradNorm: Double, tokensPerSecond: Double) -> RunEvent {
        var e = RunEvent(.step)
        e.step = step; e.loss = loss; e.lr = lr; e.gradNorm = gradNorm; e.tokensPerSecond = tokensPerSecond
        return e
    }

    public static func checkpointWritten(step: Int, path: String, bytes: Int, seconds: Double) -> RunEvent {
        var e = RunEvent(.checkpoint)
        e.step = step; e.path = path; e.bytes = bytes; e.seconds = seconds
        return e
    }

    public static func stoppedAt(step: Int, checkpoint: String) -> RunEvent {
        var e = RunEvent(.stopped)
        e.step = step; e.checkpoint = checkpoint
        return e
    }

    public static func resumed(step: Int, checkpoint: String? = nil, writtenBy: String? = nil) -> RunEvent {
        var e = RunEvent(.resume)
        e.step = step; e.checkpoint = checkpoint; e.writtenBy = writtenBy
        return e
    }

    public static func initialized(from: String, valueFrom: String? = nil) -> RunEvent {
        var e = RunEvent(.initialized)
        e.from = from; e.valueFrom = valueFrom
        return e
    }

    public static func evaluated(step: Int, validationLoss: Double) -> RunEvent {
        var e = RunEvent(.eval)
        e.step = step; e.validationLoss = validationLoss
        return e
    }

    public static func ended(step: Int, trainLoss: Double, trainSeconds: Double) -> RunEvent {
        var e = RunEvent(.end)
        e.step = step; e.trainLoss = trainLoss; e.trainSeconds = trainSeconds
        return e
    }

    /// A prepare job's rank finished a unit.
    public static func unitPrepared(_ r: UnitReport, rank: Int) -> RunEvent {
        var e = RunEvent(.unit)
        e.unit = r.unit; e.rank = rank; e.path = r.file; e.bytes = r.bytes; e.documents = r.documents; e.tokens = r.tokens; e.seconds = r.seconds
        return e
    }

    /// A prepare job's dataset, merged and published.
    public static func merged(_ d: PreparedDataset, units: Int, seconds: Double) -> RunEvent {
        var e = RunEvent(.merge)
        e.step = units; e.path = d.settings.out; e.documents = d.totals.documents; e.tokens = d.totals.tokens
        e.duplicates = d.totals.duplicatesDropped; e.bytes = d.totals.inputBytes; e.seconds = seconds
        return e
    }

    /// A rank's checkpoint found no space (`checkpoint_failed`): the file,
    /// the bytes the checkpoint needs and those free, and the whole story as `reason`.
    public static func checkpointFailed(_ s: NoSpace, rank: Int) -> RunEvent {
        var e = RunEvent(.checkpointFailed)
        e.step = s.step; e.rank = rank; e.path = s.file; e.bytes = s.neededBytes; e.bytesFree = s.freeBytes
        e.filesystem = s.filesystem; e.reason = s.description
        return e
    }

    /// A coordinator's event about job `id`.
    public static func coordinator(_ kind: Kind, job id: Int) -> RunEvent {
        var e = RunEvent(kind)
        e.jobID = id
        return e
    }
}
