#!/bin/sh
# The issue-9 experiment on the synthetic world: jobs/rlhf-world.yaml (SFT
# then V1..V5) in both arms — selection by the reward models and by the
# annotator (the control) — with each seed given, plus the small policy
# doing rejection sampling on its own samples (no distillation), then one
# table of every figure side by side (OUT/comparison.md). Needs the base
# and SFT models of make world-sft. About 6 minutes a pipeline here.
#   scripts/rlhf-arms.sh [SEEDS...]                  (default: 1 2)
# FAMILIES=capitals,twice puts the pipelines in a world of only those task
# families (its own data and SFT models, made here from the same base
# models, in runs/world-FAMILIES; results in runs/rlhf-arms-FAMILIES).
set -e
HERD=${HERD:-.build/release/herd}
WORLD=runs/world
OUT=runs/rlhf-arms
if [ -n "$FAMILIES" ]; then
  WORLD=$(HERD=$HERD scripts/world.sh $FAMILIES)
  OUT=runs/rlhf-arms-$(echo $FAMILIES | tr ',' '-')
fi
mkdir -p $OUT
seeds=${*:-1 2}
manifests=""
for seed in $seeds; do
  for arm in reward_model annotator small_alone; do
    name=$arm-seed$seed
    m=$OUT/$name.yaml
    sed -e "s#^name: .*#name: $name#" -e "s#^seed: .*#seed: $seed#" -e "s#^output: .*#output: $OUT/$name#" \
        -e "s#runs/world/data#$WORLD/data#g" -e "s#runs/world/sft#$WORLD/sft#g" jobs/rlhf-world.yaml > $m
    if [ $arm = annotator ]; then sed -i 's#^selection: .*#selection: annotator#' $m; fi
    if [ $arm = small_alone ]; then
      # The small policy samples and is fine-tuned on its own selections.
      sed -i -e '/{name: large, init:/d' -e "s#{name: small, init: \(.*\)}#{name: small, init: \1, sampler: true}#" $m
    fi
    [ -f $OUT/$name/report.json ] && grep -q '"V5"' $OUT/$name/report.json || $HERD rlhf launch $m --iteration 1 --through 5 > $OUT/$name.log 2>&1 || \
      { echo "$name failed: see $OUT/$name.log"; exit 1; }
    echo "$name: done"
    manifests="$manifests $m"
  done
done
$HERD rlhf report $manifests | tee $OUT/comparison.md
