#!/bin/sh
# The Llama 2 paper's Figure 6 in miniature: reward-model accuracy by model
# size and by amount of data, on the synthetic world, then the RLHF loop with
# the largest reward model against the shipped one.
#   - a third, larger size if absent: jobs/world-base-xl.yaml and
#     jobs/world-sft-xl.yaml (4.9M parameters; runs/world-xl), and its SFT
#     in the successor,sum world (runs/world-successor-sum, made here like
#     FAMILIES=successor,sum scripts/rlhf-arms.sh makes it when absent);
#   - comparisons by runs/world/sft on the world's prompts, labelled by the
#     annotator: the first 1100 prompts for training (OUT/train.jsonl), the
#     last 400 held out (OUT/heldout.jsonl);
#   - 9 helpfulness reward models: initialised from the small (0.13M), large
#     (0.87M) and xl (4.9M) SFT models, each on the first 275, 550 and 1100
#     training comparisons, all evaluated on the same held-out comparisons,
#     each with seeds 1, 2 and 3; the table of held-out accuracy, overall and
#     per degree (the mean over the seeds), is OUT/table.md;
#   - jobs/rlhf-world.yaml (TEMPLATE) in the successor,sum world, V1..V3,
#     twice: with the shipped reward models (from the large SFT) and with
#     reward_models.init the xl SFT, nothing else changed; each iteration's
#     large policy (right, greedy and at T = 1, with 95% intervals, and the
#     gate's decision) from each report.json, and xl against shipped paired
#     over the prompts, in OUT/loop.md.
# Needs runs/world of make world-sft. About 40 minutes here from scratch,
# beside another job: the xl base and its two SFTs 12, the 27 reward models
# (SEEDS, default 1 2 3) 12, a pipeline 3 to 9.
#   scripts/rm-scaling.sh
# Run from the root of a checkout (runs/ is the current directory's); the
# job manifests come from the script's own checkout (JOBS, TEMPLATE).
# Runs that have finished (an "end" event; a pipeline's V3 evaluation) are
# not run again.
set -e
HERD=${HERD:-.build/release/herd}
JOBS=${JOBS:-$(dirname "$0")/../jobs}
TEMPLATE=${TEMPLATE:-$JOBS/rlhf-world.yaml}
WORLD=runs/world
XL=runs/world-xl
SS=runs/world-successor-sum
OUT=runs/rm-scaling
mkdir -p $OUT $XL
start=$(date +%s)
finished() { [ -f $1/events.jsonl ] && grep -q '"event":"end"' $1/events.jsonl; }
run() {  # manifest run-directory log
  finished $2 || $HERD run $1 > $3 2>&1 || { echo "$2 failed: see $3"; exit 1; }
  echo "$2: done"
}

# The xl size, and the successor,sum world with its three SFT models.
run $JOBS/world-base-xl.yaml $XL/base $XL/base.log
run $JOBS/world-sft-xl.yaml $XL/sft $XL/sft.log
HERD=$HERD JOBS=$JOBS $(dirname "$0")/world.sh successor,sum > /dev/null
sed -e "s#^name: .*#name: world-successor-sum-sft-xl#" -e "s#runs/world/data#$SS/data#" -e "s#^output: .*#output: $SS/sft-xl#" \
    $JOBS/world-sft-xl.yaml > $SS/sft-xl.yaml
run $SS/sft-xl.yaml $SS/sft-xl $SS/sft-xl.log

# The comparisons: the large SFT's answers at T = 0.6 and 1.0, as the
# pipeline's annotation makes them; a rerun continues a batch.
head -n 1100 $WORLD/data/prompts.jsonl > $OUT/prompts-train.jsonl
tail -n 400 $WORLD/data/prompts.jsonl > $OUT/prompts-heldout.jsonl
for b in train:1 heldout:2; do
  $HERD rlhf annotate --policy $WORLD/sft --prompts $OUT/prompts-${b%:*}.jsonl --pool $OUT/${b%:*}.jsonl --batch ${b%:*} \
      --temperatures 0.6,1.0 --max-new-tokens 48 --seed ${b#*:} -- $HERD rlhf annotator > $OUT/annotate-${b%:*}.log 2>&1 || \
    { echo "annotation ${b%:*} failed: see $OUT/annotate-${b%:*}.log"; exit 1; }
done

# The 9 reward models, each with every seed of SEEDS (the same seeds for
# all): the pipeline's helpfulness recipe (jobs/rlhf-world.yaml), held-out
# comparisons given. Seed 1's run is OUT/rm-SIZE-N, another's rm-SIZE-N-seedS.
amounts="275 550 1100"
sizes="small:$WORLD/sft-small large:$WORLD/sft xl:$XL/sft"
SEEDS=${SEEDS:-1 2 3}
for seed in $SEEDS; do
  for n in $amounts; do
    head -n $n $OUT/train.jsonl > $OUT/train-$n.jsonl
    for s in $sizes; do
      name=rm-${s%%:*}-$n; [ $seed = 1 ] || name=$name-seed$seed
      cat > $OUT/$name.yaml <<EOF
name: rm-scaling-$name
kind: reward
seed: $seed
init: ${s#*:}
data:
  comparisons: $OUT/train-$n.jsonl
  held_out: $OUT/heldout.jsonl
  prompts: $WORLD/data/prompts.jsonl
  seq_len: 128
reward: {margin: small, objective: helpfulness, other_share: 0}
batch: {pairs: 16}
optimizer: {lr: 3e-4}
epochs: 2
eval: {interval: 1000}
output: $OUT/$name
EOF
      run $OUT/$name.yaml $OUT/$name $OUT/$name.log
    done
  done
done

# The table: each run's last evaluation (on the held-out comparisons of its
# objective: those on prompts not tagged safety), the mean over the seeds.
for s in $sizes; do
  for n in $amounts; do
    own=$(awk 'NR == FNR { if ($0 ~ /"safety":true/ && match($0, /"id":"[^"]*"/)) safe[substr($0, RSTART + 6, RLENGTH - 7)] = 1; next }
               match($0, /"prompt_id":"[^"]*"/) && !(substr($0, RSTART + 13, RLENGTH - 14) in safe) { k++ } END { print k + 0 }' \
               $WORLD/data/prompts.jsonl $OUT/train-$n.jsonl)
    for seed in $SEEDS; do
      d=$OUT/rm-${s%%:*}-$n; [ $seed = 1 ] || d=$d-seed$seed
      awk -v size=${s%%:*} -v n=$n -v own=$own '
        function get(key) { return match(line, "\"" key "\":[^,}]*") ? substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3) + 0 : 0 }
        /"event":"start"/ { line = $0; params = get("parameters"); steps = get("steps") }
        /"event":"eval"/ { e = $0 }
        END { line = e; print size, n, own, params, steps, get("accuracy"), get("pairs"),
                get("accuracy_significantly_better"), get("significantly_better"), get("accuracy_better"), get("better"),
                get("accuracy_slightly_better"), get("slightly_better"), get("accuracy_negligibly_better"), get("negligibly_better") }' $d/events.jsonl
    done
  done
done > $OUT/runs.txt
awk -v seeds="$SEEDS" -v heldout=$(wc -l < $OUT/heldout.jsonl) '
  { key = $1 " " $2; if (!(key in k)) { order[++m] = key; lo[key] = 2; hi[key] = -1 }
    k[key]++; for (i = 3; i <= NF; i++) sum[key, i] += $i
    if ($6 < lo[key]) lo[key] = $6; if ($6 > hi[key]) hi[key] = $6 }
  END {
    ns = split(seeds, sd, " ")
    printf "Held-out accuracy of the helpfulness reward model (how often the chosen answer scores higher) by size (the SFT model it starts from) and training comparisons (in brackets: the helpfulness ones it trains on); the mean over %d seed(s) (%s), with the lowest and highest seed; [95%%]: the held-out sampling interval of that mean (normal approximation over the %d held-out helpfulness pairs, of %d comparisons). Per degree: accuracy (pairs).\n\n", ns, seeds, sum[order[1], 7] / k[order[1]], heldout
    print "| size | parameters | comparisons | steps | accuracy | [95%] | seeds (min–max) | significantly better | better | slightly better | negligibly better |"
    print "|---|---|---|---|---|---|---|---|---|---|---|"
    for (j = 1; j <= m; j++) { key = order[j]; c = k[key]; split(key, f, " "); a = sum[key, 6] / c; p = sum[key, 7] / c; h = 1.96 * sqrt(a * (1 - a) / p)
      printf "| %s | %.2fM | %d (%d) | %d | %.3f | [%.3f, %.3f] | %.3f–%.3f |", f[1], sum[key, 4] / c / 1e6, f[2], sum[key, 3] / c, sum[key, 5] / c, a, a - h, a + h, lo[key], hi[key]
      for (i = 8; i <= 14; i += 2) if (sum[key, i + 1] > 0) printf " %.3f (%d) |", sum[key, i] / c, sum[key, i + 1] / c; else printf " — (0) |"
      printf "\n" }
    printf "\n| mean accuracy |"; for (j = 1; j <= 3; j++) { split(order[j], f, " "); printf " %s |", f[2] }
    printf "\n|---|---|---|---|\n"
    for (j = 1; j <= m; j++) { split(order[j], f, " "); if (j % 3 == 1) printf "| %s |", f[1]; printf " %.3f |", sum[order[j], 6] / k[order[j]]; if (j % 3 == 0) printf "\n" } }' $OUT/runs.txt | tee $OUT/table.md

# The loop: the same pipeline in the successor,sum world, its reward models
# from the large SFT (shipped) or from the xl one. A health check that stops
# a pipeline is a result: its reason is printed, and the arm runs again as
# ARM-lowered with the thresholds lowered to herd's defaults (0.55, 0.6 on
# the clear degrees; on-policy 0.5, 0.55), to have the comparison. The check
# only stops: an arm it does not stop runs the same with either thresholds.
arms="shipped xl"
for arm in shipped xl shipped-lowered xl-lowered; do
  case " $arms " in *" $arm "*) ;; *) continue ;; esac
  name=loop-$arm
  m=$OUT/$name.yaml
  sed -e "s#^name: .*#name: rm-scaling-$name#" -e "s#^output: .*#output: $OUT/$name#" \
      -e "s#runs/world/data#$SS/data#g" -e "s#runs/world/sft#$SS/sft#g" $TEMPLATE > $m
  case $arm in xl*) sed -i "/^reward_models:/,/^[a-z]/ s#^  init: [^ ]*#  init: $SS/sft-xl#" $m ;; esac
  case $arm in *-lowered) sed -i -e "s#^    held_out: .*#    held_out: 0.55#" -e "s#^    held_out_clear: .*#    held_out_clear: 0.6#" \
      -e "s#^    on_policy: .*#    on_policy: 0.5#" -e "s#^    on_policy_clear: .*#    on_policy_clear: 0.55#" $m ;; esac
  if [ -f $OUT/$name/pipeline.log ] && grep -q 'V3/evaluate: finished' $OUT/$name/pipeline.log; then status=0
  else status=0; $HERD rlhf launch $m --iteration 1 --through 3 > $OUT/$name.log 2>&1 || status=$?; fi
  if [ $status = 0 ]; then echo "$name: done"
  else
    echo "$name: stopped (exit $status), see $OUT/$name.log:"; grep -h "error" $OUT/$name.log | tail -1
    if grep -q "may not choose samples" $OUT/$name.log; then arms="$arms $arm-lowered"; fi
  fi
done
diff $OUT/loop-shipped.yaml $OUT/loop-xl.yaml || true
python3 - $(for a in $arms; do echo $OUT/loop-$a; done) <<'EOF' | tee $OUT/loop.md
import json, os, sys
print("The large policy on the successor,sum world's held-out prompts, per iteration: right (greedy) and at T = 1,")
print("95% intervals; promoted: the gate's decision; the helpfulness RM's held-out accuracy and its probe (0.5: a coin).")
print()
print("| reward models | iteration | right | right (T=1) | promoted | helpfulness RM held-out | on-policy | probe successor | probe sum |")
print("|---|---|---|---|---|---|---|---|---|")
for run in sys.argv[1:]:
    path = os.path.join(run, "report.json")
    if not os.path.exists(path):
        print(f"| {os.path.basename(run)} | (no report) | | | | | | | |"); continue
    r = json.load(open(path))
    its = {it["iteration"]: it for it in r["iterations"]}
    rows = [p for p in r["policies"] if p["policy"] == "large"]
    rows += [{"iteration": i} for i in its if i not in [p["iteration"] for p in rows]]   # stopped before sampling
    for p in rows:
        i, it = p["iteration"], its.get(p["iteration"], {})
        verdict = [v for v in it.get("promotion", {}).get("verdicts", []) if v["policy"] == "large"]
        promoted = "—" if not verdict else ("yes" if verdict[0]["promoted"] else "no")
        health = it.get("health", {})
        onp = [m["accuracy"] for m in health.get("measures", []) if m["model"] == "helpfulness" and m["measure"] == "on-policy"]
        probe = health.get("probe", {})
        f = lambda x: "" if x is None else f"{x:.3f}"
        if "right" in p:
            iv = p["intervals"]
            figures = (f"{p['right']:.3f} [{iv['right']['low']:.3f}, {iv['right']['high']:.3f}] "
                       f"| {p['rightSampled']:.3f} [{iv['right_sampled']['low']:.3f}, {iv['right_sampled']['high']:.3f}] | {promoted}")
        else: figures = "stopped by the health check | | —"
        print(f"| {os.path.basename(run)} | {i} | {figures} "
              f"| {f(it.get('heldOutHelpfulness'))} | {f(onp[0] if onp else None)} | {f(probe.get('successor'))} | {f(probe.get('sum'))} |")
print()
for run in sys.argv[1:]:
    log = run + ".log"
    stops = [l.split("error: ", 1)[1].strip() for l in open(log) if "error: " in l] if os.path.exists(log) else []
    if stops: print(f"{os.path.basename(run)} stopped: {stops[-1]}")
# xl against shipped, paired over the same held-out prompts (the
# evaluation's seeds are the pipeline's, the same in both): the mean
# per-prompt difference in right, greedy and at T = 1, with a 95% percentile
# bootstrap interval. Each arm's run that reached V3 (ARM, else ARM-lowered).
import random
from collections import defaultdict
def done(a):
    for run in sys.argv[1:]:
        if os.path.basename(run) in (f"loop-{a}", f"loop-{a}-lowered") and os.path.exists(os.path.join(run, "V3", "evaluation.json")):
            return run
def right(run, it, mode):
    e = json.load(open(os.path.join(run, it, "evaluation.json")))["large"][mode]["answers"]
    d = defaultdict(list)
    for a in e:
        if not a["unsafePrompt"]: d[a["prompt"]].append(a["helpfulness"] == 7)
    return {p: sum(v) / len(v) for p, v in d.items()}
xl, shipped = done("xl"), done("shipped")
if xl and shipped:
    print()
    print(f"{os.path.basename(xl)} − {os.path.basename(shipped)}, the large policy, paired over the held-out prompts (95% bootstrap):")
    print()
    print("| iteration | right | right (T=1) |")
    print("|---|---|---|")
    for it in ("V1", "V2", "V3"):
        cells = []
        for mode in ("greedy", "sampled"):
            a, b = right(xl, it, mode), right(shipped, it, mode)
            diffs = [a[p] - b[p] for p in sorted(a)]
            rng, n = random.Random(1), len(diffs)
            boot = sorted(sum(rng.choice(diffs) for _ in range(n)) / n for _ in range(2000))
            cells.append(f"{sum(diffs) / n:+.3f} [{boot[49]:+.3f}, {boot[1949]:+.3f}]")
        print(f"| {it} | {cells[0]} | {cells[1]} |")
EOF
echo "rm-scaling: $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s"
