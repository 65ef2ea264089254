#!/bin/sh
# A variant of the synthetic world with its two SFT models, made from the
# shipped world's base models (make world-sft) when missing; prints its
# directory. The shipped world (every family, seed 1) is runs/world.
#   scripts/world.sh FAMILIES [SEED]      FAMILIES: comma-separated, or all
# runs/world-FAMILIES (seed 1) or runs/world-FAMILIES-sSEED. HERD and JOBS
# (where jobs/world-sft*.yaml are) as the other scripts take them.
set -e
HERD=${HERD:-.build/release/herd}
JOBS=${JOBS:-$(dirname "$0")/../jobs}
families=$1; seed=${2:-1}
if [ "$families" = all ] && [ "$seed" = 1 ]; then echo runs/world; exit 0; fi
dir=runs/world-$(echo $families | tr ',' '-')
[ "$seed" = 1 ] || dir=$dir-s$seed
[ "$families" = all ] && families=capitals,twice,successor,sum
done_() { [ -f $1/events.jsonl ] && grep -q '"event":"end"' $1/events.jsonl; }
if ! done_ $dir/sft-small; then
  mkdir -p $dir
  [ -f $dir/data/prompts.jsonl ] || $HERD rlhf world --out $dir/data --families $families --seed $seed > $dir/world.log
  for size in sft sft-small; do
    sed -e "s#runs/world/data#$dir/data#" -e "s#output: runs/world/$size#output: $dir/$size#" $JOBS/world-$size.yaml > $dir/$size.yaml
    done_ $dir/$size || $HERD run $dir/$size.yaml --no-resume > $dir/$size.log
  done
fi
echo $dir
