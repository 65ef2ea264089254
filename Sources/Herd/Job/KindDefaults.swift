import Foundation

extension JobManifest {
    /// What a job's kind decides that its manifest does not say: one entry
    /// per kind, so that the four kinds' defaults (the Llama 2 paper's for
    /// its fine-tunes) read side by side, and a section's parser asks the
    /// table instead of asking which kind it is in.
    public struct KindDefaults: Sendable, Equatable {
        /// What the `data:` section holds; the raw value is the field that names its file.
        public enum DataForm: String, Sendable, Equatable {
            /// A text corpus with its tokenizer, or token shards (pretraining).
            case corpus
            /// Chat demonstrations as JSON lines (SFT).
            case demonstrations
            /// Preference comparisons as JSON lines (reward models).
            case comparisons
            /// The prompts rollouts answer (PPO).
            case prompts
        }

        /// The global batch when `batch:` gives none.
        public enum BatchDefault: Sendable, Equatable {
            /// None: the manifest gives `batch:` (sequences or tokens).
            case required
            case sequences(Int)
            /// A reward model's batch is counted in pairs (`batch.pairs`), two sequences each.
            case pairs(Int)
            /// PPO's batch is its rollouts (`ppo.rollouts`): a `batch:` section is refused.
            case rollouts
        }

        /// How long the job runs when `steps` is not given.
        public enum LengthDefault: Sendable, Equatable {
            /// Pretraining gives steps or train_tokens; `epochs` is refused.
            case given
            /// Passes over the data (`epochs`, by default this many).
            case epochs(Double)
            /// PPO iterations; `epochs` is refused.
            case iterations(Int)
        }

        /// The learning rate's warmup when schedule.warmup_steps is not given.
        public enum WarmupRule: Sendable, Equatable {
            case steps(Int)
            /// A share of the run's steps, and at least `atLeast`.
            case share(Double, atLeast: Int)

            public func steps(of total: Int) -> Int {
                switch self {
                case .steps(let n): return n
                case .share(let s, let least): return max(least, Int((s * Double(total)).rounded()))
                }
            }
        }

        /// Whether the job must start from weights (`init`): every fine-tune does.
        public var requiresInit: Bool
        /// Whether the model is the init's alone (a PPO policy is the chat
        /// model it starts from): a `model:` section is refused, except in
        /// a plan, where a pipeline stands a preset in for a policy that is
        /// not on this machine.
        public var modelIsInit: Bool
        /// Whether the model ends in a scalar head (a reward model's score)
        /// instead of the vocabulary's logits.
        public var scalarHead: Bool
        public var data: DataForm
        /// The held-out share when data.val_fraction is not given (token
        /// shards hold their own split).
        public var validationFraction: Double
        /// Whether the job reads a `reward:` section (a reward model's margins and data mix).
        public var rewardSection: Bool
        /// Whether the job needs a `ppo:` section (its reward models and PPO's settings).
        public var ppoSection: Bool
        public var batch: BatchDefault
        /// The peak learning rate when optimizer.lr is not given; nil: the
        /// manifest gives it, and so an `optimizer:` section.
        public var learningRate: Double?
        public var length: LengthDefault
        public var warmup: WarmupRule
        /// The schedule's floor as a share of the peak (1: a constant rate).
        public var minLRRatio: Double
        /// Whether the last step is checkpointed unless checkpoint.interval
        /// says otherwise: a fine-tuned model is what the job is for.
        public var checkpointsEnd: Bool

        public static func of(_ kind: Kind) -> KindDefaults {
            switch kind {
            case .pretrain:
                return KindDefaults(requiresInit: false, modelIsInit: false, scalarHead: false, data: .corpus, validationFraction: 0.1,
                                    rewardSection: false, ppoSection: false, batch: .required, learningRate: nil,
                                    length: .given, warmup: .steps(2000), minLRRatio: 0.1, checkpointsEnd: false)
            case .sft:
                // The paper's SFT: batches of 64, LR 2e-5 without warmup, 2 epochs.
                return KindDefaults(requiresInit: true, modelIsInit: false, scalarHead: false, data: .demonstrations, validationFraction: 0.05,
                                    rewardSection: false, ppoSection: false, batch: .sequences(64), learningRate: 2e-5,
                                    length: .epochs(2), warmup: .steps(0), minLRRatio: 0.1, checkpointsEnd: true)
            case .reward:
                // The paper's reward models: 512 pairs a batch, LR 1e-5 with 3% warmup, 1 epoch.
                return KindDefaults(requiresInit: true, modelIsInit: false, scalarHead: true, data: .comparisons, validationFraction: 0.05,
                                    rewardSection: true, ppoSection: false, batch: .pairs(512), learningRate: 1e-5,
                                    length: .epochs(1), warmup: .share(0.03, atLeast: 5), minLRRatio: 0.1, checkpointsEnd: true)
            case .ppo:
                // The paper's PPO: a constant LR of 1e-6, 200–400 iterations of ppo.rollouts each.
                return KindDefaults(requiresInit: true, modelIsInit: true, scalarHead: false, data: .prompts, validationFraction: 0,
                                    rewardSection: false, ppoSection: true, batch: .rollouts, learningRate: 1e-6,
                                    length: .iterations(200), warmup: .steps(0), minLRRatio: 1, checkpointsEnd: true)
            case .prepare:
                // Never asked: a prepare job's manifest is read by parsePreparation, without these sections.
                return KindDefaults(requiresInit: false, modelIsInit: false, scalarHead: false, data: .corpus, validationFraction: 0,
                                    rewardSection: false, ppoSection: false, batch: .required, learningRate: nil,
                                    length: .given, warmup: .steps(0), minLRRatio: 1, checkpointsEnd: false)
            }
        }
    }
}

extension JobManifest.Kind {
    public var defaults: JobManifest.KindDefaults { .of(self) }
}
