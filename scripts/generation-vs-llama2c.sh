#!/usr/bin/env bash
# Herd's generation against llama2.c's run.c on the stories15M shape, in
# interleaved rounds (docs/benchmarks.md#generation). run.c is fetched and
# built for the measurement, never kept in this repository:
#   scripts/generation-vs-llama2c.sh [rounds]
# LLAMA2C=/path/to/llama2.c uses a copy already on disk instead of cloning.
set -euo pipefail
rounds=${1:-3}
herd=$(cd "$(dirname "$0")/.." && pwd)/.build/release/herd
[ -x "$herd" ] || { echo "build Herd first: swift build -c release" >&2; exit 2; }
work=$(mktemp -d /tmp/herd-llama2c.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=${LLAMA2C:-}
if [ -z "$src" ]; then
    git clone -q https://github.com/karpathy/llama2.c "$work/llama2.c"
    git -C "$work/llama2.c" checkout -q 350e04f
    src=$work/llama2.c
fi
gcc -Ofast -march=native "$src/run.c" -lm -o "$work/run"
gcc -Ofast -march=native -fopenmp "$src/run.c" -lm -o "$work/run_omp"
# The stories15M shape in run.c's format (a negative vocabulary: an untied
# output layer, as Herd's bench has), random weights, and a tokenizer of
# 32000 placeholder pieces; the speed depends on neither.
python3 - "$work" <<'PY'
import array, random, struct, sys
dim, hidden, layers, heads, kv, vocab, seq = 288, 768, 6, 6, 6, 32000, 256
hd = dim // heads
random.seed(1)
block = array.array('f', (random.uniform(-0.05, 0.05) for _ in range(100000)))
def weights(n, f):
    while n > 0:
        k = min(n, len(block)); block[:k].tofile(f); n -= k
with open(sys.argv[1] + '/model.bin', 'wb') as f:
    f.write(struct.pack('7i', dim, hidden, layers, heads, kv, -vocab, seq))
    for n in [vocab * dim, layers * dim, layers * dim * dim, layers * dim * kv * hd, layers * dim * kv * hd,
              layers * dim * dim, layers * dim, layers * dim * hidden, layers * hidden * dim, layers * dim * hidden,
              dim, seq * hd // 2, seq * hd // 2, vocab * dim]:
        weights(n, f)
with open(sys.argv[1] + '/tokenizer.bin', 'wb') as f:
    f.write(struct.pack('i', 16))
    for i in range(vocab):
        b = ['<unk>', '<s>', '</s>'][i].encode() if i < 3 else b't%d' % i
        f.write(struct.pack('fi', 0.0, len(b))); f.write(b)
PY
runc() {   # runc BINARY THREADS: five tokens/s figures
    local out=""
    for _ in 1 2 3 4 5; do
        out="$out $(OMP_NUM_THREADS=$2 "$work/$1" "$work/model.bin" -t 0 -n 200 -z "$work/tokenizer.bin" 2>&1 | grep -o 'tok/s: [0-9.]*' | cut -d' ' -f2)"
    done
    echo "$out"
}
for round in $(seq 1 "$rounds"); do
    for t in 1 2; do
        echo "== round $round: herd, $t thread(s)"
        "$herd" bench --only generation --threads "$t"
    done
    echo "== round $round: run.c (run), 1 thread:$(runc run 1)"
    echo "== round $round: run.c (run_omp), 1 thread:$(runc run_omp 1)"
    echo "== round $round: run.c (run_omp), 2 threads:$(runc run_omp 2)"
done
