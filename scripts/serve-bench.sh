#!/usr/bin/env bash
# Load on herd serve while a job trains (make bench-serve): 50 concurrent
# clients read the API on loopback for 30 s (wrk, bench/serve-load.lua),
# once paced like dashboards (each client one request every 500 ms) and
# once flat out; the same job trains without load before and after.
# Prints requests, errors, latency percentiles (wrk's), and training
# tokens/s with and without load. Figures come from this run, nothing fixed.
set -euo pipefail
HERD=${HERD:-$(pwd)/.build/release/herd}
CLIENTS=${CLIENTS:-50}
SECONDS_LOAD=${SECONDS_LOAD:-30}
STEPS=${STEPS:-20000}
command -v wrk >/dev/null || { echo "serve-bench: wrk is not installed (apt-get install wrk; make setup does)"; exit 2; }
[ -x "$HERD" ] || { echo "serve-bench: build $HERD first (make build)"; exit 2; }

WORK=$(mktemp -d /tmp/herd-serve-bench.XXXXXX)
export HERD_HOME=$WORK/home
SERVE_PID=
cleanup() { [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT

if [ -f ../shared/data/tinyshakespeare.txt ]; then head -c 200000 ../shared/data/tinyshakespeare.txt > "$WORK/corpus.txt"
else cat /usr/share/games/fortunes/*[!.dat] 2>/dev/null | head -c 200000 > "$WORK/corpus.txt"; fi
cat > "$WORK/local.yaml" <<YAML
name: local
launcher: mpirun
nodes:
  - {hosts: [localhost], slots: 2, cores: 2, memory_gb: 16, peak_tflops: 0.1}
YAML
job() { # job NAME: the same training job, into its own run directory
  cat > "$WORK/$1.yaml" <<YAML
kind: pretrain
name: $1
seed: 5
model: {preset: tiny-gqa, max_seq_len: 64}
data: {corpus: $WORK/corpus.txt, tokenizer: byte, seq_len: 64}
batch: {sequences: 32, micro_batch: 16}
optimizer: {lr: 3e-3}
steps: $STEPS
log_interval: 20
threads: 2
checkpoint: {interval: 200, keep: 2}
parallelism: {data: 2, tensor: 1}
monitor: {heartbeat_seconds: 1, hang_timeout_seconds: 60}
output: $WORK/run-$1
YAML
  echo "$WORK/$1.yaml"
}
# Training tokens/s of a run inside a time window: steps between the
# first and last step events stamped between FROM and TO (seconds since
# the epoch) times tokens per step, over the time between them; without
# FROM and TO, the LOAD seconds after its 20th step. Prints the rate and
# the steps it covers.
tps() { python3 - "$WORK/run-$1/events.jsonl" "${2:-}" "${3:-}" "$SECONDS_LOAD" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
per_step = [e for e in ev if e.get("event") == "start"][-1]["tokens_per_step"]
steps = [e for e in ev if e.get("event") == "step" and e.get("step", 0) >= 20]
lo = float(sys.argv[2]) if sys.argv[2] else steps[0]["time"]
hi = float(sys.argv[3]) if sys.argv[3] else lo + float(sys.argv[4])
inside = [e for e in steps if lo <= e["time"] <= hi]
a, b = inside[0], inside[-1]
print("%.0f %d" % ((b["step"] - a["step"]) * per_step / (b["time"] - a["time"]), b["step"] - a["step"]))
PY
}

"$HERD" serve --port 0 > "$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 50); do grep -q "serving http" "$WORK/serve.log" && break; sleep 0.1; done
PORT=$(grep -o '127.0.0.1:[0-9]*' "$WORK/serve.log" | head -1 | cut -d: -f2)
echo "herd serve on port $PORT; $CLIENTS clients for $SECONDS_LOAD s; job: tiny-gqa, data 2, $STEPS steps"

# run_job NAME DELAY_MS: the job trains; after its 20th step, SECONDS_LOAD
# seconds of wrk with that pause between a client's requests ("none": no
# load, the same time just passes); then the job is cancelled. Leaves the
# window in NAME.window, wrk's report in NAME.wrk, CPU seconds of the
# server and of wrk in NAME.cpu.
TICK=$(getconf CLK_TCK)
cpu() { awk -v t="$TICK" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
run_job() {
  "$HERD" run "$(job "$1")" --cluster "$WORK/local.yaml" > "$WORK/$1.out" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do grep -q '"step":20,' "$WORK/run-$1/events.jsonl" 2>/dev/null && break; sleep 0.1; done
  local id; id=$("$HERD" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
  local t0 c0 w=0; t0=$(date +%s.%N); c0=$(cpu "$SERVE_PID")
  if [ "$2" = none ]; then sleep "$SECONDS_LOAD"
  else
    HERD_BENCH_JOB=$id HERD_BENCH_DELAY_MS=$2 /usr/bin/time -f "%U %S" -o "$WORK/$1.wrktime" \
      wrk -t2 -c"$CLIENTS" -d"${SECONDS_LOAD}s" --timeout 10s --latency -s bench/serve-load.lua "http://127.0.0.1:$PORT" > "$WORK/$1.wrk"
    w=$(awk '{print $1 + $2}' "$WORK/$1.wrktime")
  fi
  echo "$t0 $(date +%s.%N)" > "$WORK/$1.window"
  echo "$(python3 -c "print($(cpu "$SERVE_PID") - $c0)") $w" > "$WORK/$1.cpu"
  kill -0 $pid 2>/dev/null || echo "  (note: job $1 ended before the window did: make STEPS larger)"
  "$HERD" cancel "$id" > /dev/null 2>&1 || true
  wait $pid || true
}
report() { # report NAME LABEL
  local w=$WORK/$1.wrk
  local reqs errs non2xx p50 p90 p99 rate
  reqs=$(awk '/requests in/ {print $1}' "$w")
  rate=$(awk '/Requests\/sec/ {print $2}' "$w")
  errs=$(awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}' "$w"); errs=${errs:-0}
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$w"); non2xx=${non2xx:-0}
  p50=$(awk '$1=="50%" {print $2}' "$w"); p90=$(awk '$1=="90%" {print $2}' "$w"); p99=$(awk '$1=="99%" {print $2}' "$w")
  printf "  %-34s %7s requests (%s/s), socket errors %s, non-2xx %s, latency p50 %s p90 %s p99 %s\n" "$2" "$reqs" "$rate" "$errs" "$non2xx" "$p50" "$p90" "$p99"
}

# Rounds of (no load, paced, flat out), interleaved so that whatever else
# the machine does falls on all three alike.
ROUNDS=${ROUNDS:-3}
for r in $(seq "$ROUNDS"); do
  run_job "base$r" none
  run_job "paced$r" 500
  run_job "flat$r" 0
done
echo "API under load ($CLIENTS connections, $SECONDS_LOAD s a run):"
for r in $(seq "$ROUNDS"); do
  report "paced$r" "round $r paced (1 req / 500 ms / client)"
  report "flat$r" "round $r flat out (no pause)"
done
for r in $(seq "$ROUNDS"); do for k in base paced flat; do
  read -r T N < <(tps "$k$r" $(cat "$WORK/$k$r.window")); read -r CS CW < "$WORK/$k$r.cpu"
  echo "$k $r $T $N $CS $CW $(awk '/requests in/ {print $1}' "$WORK/$k$r.wrk" 2>/dev/null || echo 0)"
done; done > "$WORK/figures"
python3 - "$WORK/figures" "$SECONDS_LOAD" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
window = float(sys.argv[2])
by = {}
for k, r, t, n, cs, cw, reqs in rows:
    by.setdefault(k, []).append((float(t), int(n), float(cs), float(cw), int(reqs or 0)))
base = st.median(t for t, *_ in by["base"])
print("training tokens/s in the window, per round (median):")
for k, label in (("base", "no load"), ("paced", "paced load"), ("flat", "flat-out load")):
    ts = [t for t, *_ in by[k]]
    m = st.median(ts)
    print(f"  {label:14s} " + "  ".join(f"{t:7.0f}" for t in ts) + f"   median {m:7.0f}  {(m / base - 1) * 100:+6.1f}% vs no load")
print("CPU used during the window (server; wrk, the load generator, on the same cores):")
for k, label in (("base", "no load"), ("paced", "paced load"), ("flat", "flat-out load")):
    cs = st.median(c for _, _, c, _, _ in by[k]); cw = st.median(w for *_, w, _ in by[k])
    reqs = st.median(q for *_, q in by[k])
    per = f", {cs / reqs * 1e6:.0f} us of server CPU a request" if reqs else ""
    print(f"  {label:14s} server {cs:6.2f} s ({cs / window * 100:5.1f}% of one core), wrk {cw:6.2f} s{per}")
PY
