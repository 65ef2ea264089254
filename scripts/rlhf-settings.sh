#!/bin/sh
# Which settings of the shipped pipeline (jobs/rlhf-world.yaml) carry over
# to worlds they were not chosen on. Two steps:
#   choose: each setting below, selection by the annotator, SFT then V1..V3,
#           on the choosing worlds (the shipped world and one of only the
#           harder families); the table compares what each ends with — the
#           last promoted policy of each size against its SFT model.
#   check:  the shipped settings (or CHECKED, a setting's name), both arms,
#           on world variants not used to choose them (another seed;
#           another family set).
# Tables in runs/rlhf-settings/{choose,check}.md. About 2 minutes a
# pipeline here (12 to choose, 4 to check). Needs make world-sft.
#   scripts/rlhf-settings.sh [choose|check|both]      (default: both)
# A world is FAMILIES:SEED; "all" is every family. CHOOSE and CHECK override
# the lists, SETTINGS the settings' names.
set -e
HERD=${HERD:-.build/release/herd}
OUT=runs/rlhf-settings
CHOOSE=${CHOOSE:-all:1 successor,sum:1}
CHECK=${CHECK:-all:7 capitals,twice,sum:3}
SETTINGS=${SETTINGS:-shipped k8-t1.0 t1.0 prompts600 epochs3 from-previous with-demos}
CHECKED=${CHECKED:-shipped}
mkdir -p $OUT

# The world FAMILIES:SEED's directory, made with its SFT models when missing.
world() { HERD=$HERD $(dirname "$0")/world.sh ${1%%:*} ${1##*:}; }

# pipeline NAME WORLD_DIR ARM SETTING: its manifest, launched through V3.
pipeline() {
  m=$OUT/$1.yaml
  sed -e "s#^name: .*#name: $1#" -e "s#^output: .*#output: $OUT/$1#" -e "s#runs/world/#$2/#g" \
      -e "s#^selection: .*#selection: $3#" jobs/rlhf-world.yaml > $m
  case $4 in
    shipped) ;;
    k8-t1.0) sed -i -e 's/k: 4, temperature: 0.6/k: 8, temperature: 1.0/' $m ;;
    t1.0) sed -i -e 's/k: 4, temperature: 0.6/k: 4, temperature: 1.0/' $m ;;
    prompts600) sed -i -e 's/^  sample_count: 300/  sample_count: 600/' $m ;;
    epochs3) sed -i -e 's/^  epochs: 2$/  epochs: 3/' $m ;;
    from-previous) sed -i -e 's/^  from: initial /  from: previous /' $m ;;
    with-demos) sed -i -e "s#^  from: initial #  with_demonstrations: {file: $2/data/demonstrations.jsonl, count: 600}\n  from: initial #" $m ;;
    *) echo "unknown setting $4"; exit 1 ;;
  esac
  # Reward models below their health thresholds stop a pipeline: a result, not a failure.
  [ -f $OUT/$1/V3/promotion.json ] || $HERD rlhf launch $m --iteration 1 --through 3 > $OUT/$1.log 2>&1 || \
    grep -q "rm-health: failed" $OUT/$1/pipeline.log || { echo "$1 failed: see $OUT/$1.log" >&2; exit 1; }
  echo "$1: $(grep -q 'rm-health: failed' $OUT/$1/pipeline.log && echo 'stopped by the reward models health check' || echo done)" >&2
  echo $m
}

step=${1:-both}
if [ $step = choose ] || [ $step = both ]; then
  manifests=""
  for w in $CHOOSE; do
    dir=$(world $w)
    for s in $SETTINGS; do manifests="$manifests $(pipeline $(basename $dir)-$s $dir annotator $s)"; done
  done
  $HERD rlhf report $manifests > $OUT/choose.md
  grep -A 6 "pipelines' results" $OUT/choose.md
fi
if [ $step = check ] || [ $step = both ]; then
  manifests=""
  for w in $CHECK; do
    dir=$(world $w)
    for arm in annotator reward_model; do manifests="$manifests $(pipeline $(basename $dir)-$CHECKED-$arm $dir $arm $CHECKED)"; done
  done
  $HERD rlhf report $manifests > $OUT/check.md
  grep -A 6 "pipelines' results" $OUT/check.md
fi
