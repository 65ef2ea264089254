#!/bin/sh
# Issue 10's PPO experiment on the synthetic world: jobs/ppo-world.yaml run
# on the V4 rejection-sampling model of each pipeline given (against that
# iteration's reward models, on its sampling prompts), then before and
# after side by side:
#   - PPO's own figures: mean combined reward and KL over its first and last
#     ten iterations (from its events);
#   - the reward models on held-out prompts: the mean combined reward of 4
#     answers a prompt at T = 1 (herd rlhf sample);
#   - the annotator on held-out prompts (herd rlhf evaluate, three seeds
#     for the T = 1 answers).
#   scripts/ppo-world.sh [PIPELINE_RUN...]     (default: the two reward-model
#                                               arms of make rlhf-arms)
# BETA, LR, STEPS and TAG change the PPO settings and the output name.
set -e
HERD=${HERD:-.build/release/herd}
BETA=${BETA:-0.01}; LR=${LR:-1e-5}; STEPS=${STEPS:-60}; TAG=${TAG:-beta$BETA}
OUT=runs/ppo-world
mkdir -p $OUT
runs=${*:-runs/rlhf-arms/reward_model-seed1 runs/rlhf-arms/reward_model-seed2}
for run in $runs; do
  name=$TAG-$(basename $run)
  heldout=$(sed -n 's/^  held_out: *\([^ ]*\).*/\1/p' $run.yaml)
  m=$OUT/$name.yaml
  sed -e "s#runs/rlhf-world#$run#g" -e "s#^name: .*#name: $name#" -e "s#^output: .*#output: $OUT/$name#" \
      -e "s#^  beta: .*#  beta: $BETA#" -e "s#^optimizer: .*#optimizer: {lr: $LR}#" -e "s#^steps: .*#steps: $STEPS#" jobs/ppo-world.yaml > $m
  $HERD run $m > $OUT/$name.log 2>&1 || { echo "$name: PPO failed, see $OUT/$name.log"; exit 1; }
  for p in before:$run/V4/finetune-large after:$OUT/$name; do
    bag=$OUT/$name-${p%%:*}.bag.jsonl
    [ -s $bag ] || $HERD rlhf sample --policy ${p#*:} --helpfulness $run/V4/rm-helpfulness --safety $run/V4/rm-safety \
        --prompts $heldout --bag $bag --iteration eval --k 4 --temperature 1.0 --max-new-tokens 48 --seed 5 > /dev/null
  done
  for seed in 1 2 3; do
    $HERD rlhf evaluate --prompts $heldout --out $OUT/$name-eval$seed.json --max-new-tokens 48 --seed $seed \
        --policy before=$run/V4/finetune-large --policy after=$OUT/$name -- $HERD rlhf annotator > $OUT/$name-eval$seed.log
  done
  echo "== $name (PPO: β $BETA, LR $LR, $STEPS iterations)"
  awk -v n=$STEPS -F'[,:}]' '/"event":"step"/ { for (i = 1; i < NF; i++) { if ($i == "\"reward\"") r = $(i+1); if ($i == "\"kl\"") k = $(i+1); if ($i == "\"step\"") s = $(i+1) }
        if (s <= 10) { r0 += r; k0 += k } if (s > n - 10) { r1 += r; k1 += k } }
        END { printf "PPO iterations 1-10: reward %.4f, KL %.4f; last 10: reward %.4f, KL %.4f\n", r0 / 10, k0 / 10, r1 / 10, k1 / 10 }' $OUT/$name/events.jsonl
  for p in before after; do
    awk -F'"reward":' '{ split($2, a, /[,}]/); s += a[1]; n++ } END { printf "held-out reward (K=4, T=1), '$p': %.4f over %d answers\n", s / n, n }' $OUT/$name-$p.bag.jsonl
  done
  grep -h "herd:" $OUT/$name-eval1.log $OUT/$name-eval2.log $OUT/$name-eval3.log
done
