# Herd's entry points. `make demo` and `make test` work on a fresh machine:
# both run `make setup` first, which installs what Herd needs from Debian.
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)

# Debian packages: BLAS, MPI and zstd (with pkg-config to find them), the
# zstd and mpirun tools, and the fortune texts the demo trains on; for herd
# serve's tests and load bench: Chromium (and a font), Prometheus, wrk, and
# openssl (a test certificate) and curl (an HTTPS client) for its TLS tests.
DEB_PACKAGES := pkg-config libopenblas-dev libopenmpi-dev openmpi-bin libzstd-dev zstd zlib1g-dev libsqlite3-dev slurm-wlm fortunes fortunes-min iproute2 util-linux chromium fonts-dejavu-core prometheus wrk strace openssl curl
HERD := .build/release/herd

.PHONY: setup build test demo bench bench-serve bench-pytorch sanitize clean slurm-up slurm-down rlhf-world world-sft rlhf-demo rlhf-arms ppo-world world-gatt gatt-arms rm-scaling

setup:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "setup: installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "setup: all Debian packages present"; fi

build: setup
	swift build -c release

# Tests run in release mode: the gradient checks and the Shakespeare recipe
# train real models, and the kernels are what ships.
# The test process trains in-process too: it gets the OpenBLAS kernels that
# herd gives its own processes (AVX-512 ones where the CPU has them; see
# Sources/Herd/Runtime/BLASEnvironment.swift), unless OPENBLAS_CORETYPE is set.
# HERD_TEST_STRICT=1: setup has installed every tool the tests use and the
# build has made the herd binary, so a test that finds one missing fails
# here instead of skipping (outside make test such a test skips, saying why).
AVX512_FLAGS := avx512f avx512bw avx512dq avx512vl avx512cd
# The tests compare Herd's tokenizer with the sentencepiece library: a venv
# with it (megatron-core's interop test runs where HERD_PYTHON has it — it
# needs torch — and says so where not).
PYENV := .build/pyenv
$(PYENV)/bin/python:
	python3 -m venv $(PYENV) && $(PYENV)/bin/pip install -q sentencepiece

test: setup $(PYENV)/bin/python
	swift build -c release --build-tests
	export HERD_TEST_STRICT=1 HERD_PYTHON=$${HERD_PYTHON:-$(PYENV)/bin/python}; \
	if [ -z "$${OPENBLAS_CORETYPE:-}" ] && (for f in $(AVX512_FLAGS); do grep -qw $$f /proc/cpuinfo || exit 1; done); then \
		export OPENBLAS_CORETYPE=SkylakeX; fi; \
	swift test -c release --skip-build --disable-swift-testing

demo: build
	$(HERD) run jobs/demo.yaml --no-resume --sample 400

# Herd's figures, then the PyTorch + transformers baseline on the same
# models when PYTHON has torch and transformers (see bench/pytorch_llama.py).
PYTHON ?= python3
bench: build
	$(HERD) bench
	$(HERD) bench --only heartbeats
	@if $(PYTHON) -c 'import torch, transformers' 2>/dev/null; then $(MAKE) --no-print-directory bench-pytorch; \
	else echo "(PyTorch baseline skipped: $(PYTHON) has no torch/transformers; make bench PYTHON=/path/to/venv/bin/python)"; fi

bench-pytorch:
	$(PYTHON) bench/pytorch_llama.py

# herd serve under load while a job trains: 50 clients for 30 s, paced and
# flat out, three rounds; latency percentiles, errors, server CPU, training
# tokens/s with and without (~5 minutes; ROUNDS=N, CLIENTS=N, SECONDS_LOAD=S).
bench-serve: build
	scripts/serve-bench.sh

# The synthetic world and its two SFT policies: the large one (0.87M
# parameters, the sampler) and the small one (0.1M, distilled into); about
# 2.5 minutes here.
world-sft: build
	rm -rf runs/world
	$(HERD) rlhf world --out runs/world/data
	$(HERD) run jobs/world-base.yaml
	$(HERD) run jobs/world-base-small.yaml
	$(HERD) run jobs/world-sft.yaml
	$(HERD) run jobs/world-sft-small.yaml

# The world's loop one step at a time: ratings before/after SFT, one
# annotation batch, the two reward models (~4 minutes).
rlhf-world: world-sft
	$(HERD) rlhf rate --policy runs/world/base --prompts runs/world/data/prompts-heldout.jsonl --max-new-tokens 48 -- $(HERD) rlhf annotator
	$(HERD) rlhf rate --policy runs/world/sft --prompts runs/world/data/prompts-heldout.jsonl --max-new-tokens 48 -- $(HERD) rlhf annotator
	$(HERD) rlhf annotate --policy runs/world/sft --prompts runs/world/data/prompts.jsonl --pool runs/world/data/pool.jsonl \
		--batch v1 --max-new-tokens 48 --temperatures 1.0,1.6 -- $(HERD) rlhf annotator
	$(HERD) run jobs/world-rm-helpful.yaml
	$(HERD) run jobs/world-rm-safety.yaml

# The RLHF pipeline on the world, SFT then V1..V5 as the scheduler runs it
# (jobs/rlhf-world.yaml): about 8 minutes in all; the report is
# runs/rlhf-world/report.md (.json, .svg).
rlhf-demo: world-sft
	rm -rf runs/rlhf-world
	$(HERD) rlhf launch jobs/rlhf-world.yaml --iteration 1 --through 5
	$(HERD) rlhf status jobs/rlhf-world.yaml

# The selection experiment: the pipeline with selection by the reward
# models and by the annotator (the control), and the small policy alone,
# two seeds each, side by side in runs/rlhf-arms/comparison.md (~40 minutes).
rlhf-arms: world-sft
	scripts/rlhf-arms.sh 1 2

# The paper's Figure 6 in miniature: helpfulness reward models of three
# sizes (0.13M, 0.87M and 4.9M parameters; the largest made here from
# jobs/world-base-xl.yaml) on three amounts of comparisons, held-out
# accuracy per degree in runs/rm-scaling/table.md; then V1..V3 in the
# successor,sum world with the xl reward models against the shipped ones
# (runs/rm-scaling/loop.md; scripts/rm-scaling.sh, ~40 minutes).
rm-scaling: world-sft
	scripts/rm-scaling.sh

# PPO on the V4 model of each reward-model arm of make rlhf-arms: reward,
# KL, the reward models' and the annotator's verdicts before and after
# (scripts/ppo-world.sh; ~10 minutes a run).
ppo-world: build
	scripts/ppo-world.sh

# Ghost Attention's world: instructed and multi-turn demonstrations, the
# dialogues, a base model with a context of 256 and its SFT (~4 minutes).
world-gatt: build
	rm -rf runs/world-gatt
	$(HERD) rlhf world --out runs/world-gatt/data --instructed 600 --multi-turn 600 --dialogues 300 --held-out-dialogues 100
	$(HERD) run jobs/world-gatt-base.yaml
	$(HERD) run jobs/world-gatt-sft.yaml

# Ghost Attention on the world: V1..V3 with the gatt stage (its samples
# checked by the annotator, and unchecked) and without it; instruction
# keeping per turn in runs/gatt-arms/comparison.md (scripts/gatt-world.sh).
gatt-arms: world-gatt
	scripts/gatt-world.sh

# The single-node Slurm of ../shared/recipes/local-slurm.md, for clusters/slurm-local.yaml.
slurm-up: setup
	scripts/local-slurm.sh start /tmp/herd-slurm

slurm-down:
	scripts/local-slurm.sh stop /tmp/herd-slurm

# The in-process tests under AddressSanitizer (a separate build in
# .build-asan). Tests that start herd itself, and the long recipe, are skipped.
# Leak reports are off: the ones seen come from XCTest, Foundation and a
# struct initialiser that throws (about 30 KB), not from training code.
sanitize: setup
	swift build -c release --sanitize=address --build-tests --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=0 swift test -c release --sanitize=address --scratch-path .build-asan --skip-build --disable-swift-testing \
		--skip "RecipeTests|CLITests|DistributedTests|CheckpointTests|PlanTests.testPlanCommand|TokenShardTests.testShardJobs|InteropTests.testExported"

clean:
	rm -rf .build .build-asan runs
