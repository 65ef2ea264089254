import Foundation
import Yams

extension PipelineManifest {
    /// The rules that span sections, checked once every section has read
    /// itself (a rule within one section is its parser's); then each stage
    /// job the pipeline will make.
    func validate() throws(ManifestError) {
        // The PPO stage's reward models are the iteration's: a template may not name others.
        for (field, t) in [("ppo", ppoJob)] + policies.enumerated().map({ ("policies[\($0.offset)].ppo", $0.element.ppo) }) {
            for key in ["helpfulness", "safety"] where t["ppo"]?.mapping?[Node(key)] != nil {
                throw ManifestError(file: file, field: "\(field).ppo.\(key)", message: "set by the pipeline (the iteration's reward models); leave it out")
            }
        }
        for it in iterations where it.extraStages.contains("gatt") && gatt == nil {
            throw ManifestError(file: file, field: "iterations[\(it.number - 1)].stages",
                                message: "stage gatt needs the pipeline's gatt section (gatt.dialogues: dialogues under a standing instruction)")
        }
        for (i, b) in (promotion.metrics + promotion.safety).enumerated() where b.metric == .instruction && gatt?.heldOut == nil {
            throw ManifestError(file: file, field: i < promotion.metrics.count ? "promotion.metrics.instruction" : "promotion.safety.instruction",
                                message: "instruction keeping is measured on held-out dialogues: set gatt.held_out")
        }
        try checkStageJobs()
    }

    /// Each stage job's fields checked now, as Herd checks any manifest
    /// (unknown fields, types, ranges), with a stand-in model and no data,
    /// so that a mistake is named before the first stage starts.
    func checkStageJobs() throws(ManifestError) {
        let probe = PipelineGraph(manifest: self)
        var jobs: [(String, String)] = []
        for objective in ["helpfulness", "safety"] {
            jobs.append(("reward_models.\(objective)", probe.rewardJob(objective: objective, iteration: iterations[0], standIn: PipelineGraph.probeShape)))
        }
        for it in iterations {
            jobs.append((it.finetune.isEmpty ? "finetune" : "iterations[\(it.number - 1)].finetune",
                         probe.finetuneJob(policy: policies[0], iteration: it, standIn: PipelineGraph.probeShape)))
        }
        for it in iterations where it.extraStages.contains("ppo") {
            jobs.append(("ppo", probe.ppoJob(policy: policies[0], iteration: it, standIn: PipelineGraph.probeShape)))
        }
        for (field, text) in jobs {
            _ = try JobManifest.parse(yaml: text, file: "\(file) (\(field))", overrides: .init(planOnly: true))
        }
    }
}
