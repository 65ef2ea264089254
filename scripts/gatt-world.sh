#!/bin/sh
# Issue 10's Ghost Attention experiment: jobs/rlhf-gatt.yaml (V1..V3, the
# gatt stage from V3, its samples checked by the annotator) beside the same
# pipeline without the check, and without the stage; all
# evaluate, per turn, how many answers keep an instruction given on the
# first turn only. Needs make world-gatt. The side-by-side report is
# runs/gatt-arms/comparison.md (the per-turn table in each run's report.md).
set -e
HERD=${HERD:-.build/release/herd}
OUT=runs/gatt-arms
mkdir -p $OUT
sed -e 's#^name: .*#name: with-gatt-checked#' -e "s#^output: .*#output: $OUT/with-gatt-checked#" jobs/rlhf-gatt.yaml > $OUT/with-gatt-checked.yaml
sed -e 's#^name: .*#name: with-gatt#' -e "s#^output: .*#output: $OUT/with-gatt#" -e '/^  check: /d' jobs/rlhf-gatt.yaml > $OUT/with-gatt.yaml
sed -e 's#^name: .*#name: without-gatt#' -e "s#^output: .*#output: $OUT/without-gatt#" -e 's#^  from: 3 .*#  from: 99#' jobs/rlhf-gatt.yaml > $OUT/without-gatt.yaml
for arm in with-gatt-checked with-gatt without-gatt; do
  $HERD rlhf launch $OUT/$arm.yaml --iteration 1 --through 3 > $OUT/$arm.log 2>&1 || { echo "$arm failed: see $OUT/$arm.log"; exit 1; }
  echo "$arm: done"
done
$HERD rlhf report $OUT/with-gatt-checked.yaml $OUT/with-gatt.yaml $OUT/without-gatt.yaml > $OUT/comparison.md
for arm in with-gatt-checked with-gatt without-gatt; do echo "== $arm"; grep -A6 '^| iteration | policy | turn' $OUT/$arm/report.md; done
