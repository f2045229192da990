# The two set-up commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-all test-slurm bench bench-sweep bench-real gpu-wheels gpu-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: an unpinned resolve would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/pairwise-rl experiment=pairwise_vs_bt $(ARGS)

# Tests run in one pytest-xdist worker per core, each with its share of the cores as torch threads (tests/conftest.py),
# a test file per worker at a time (--dist loadfile: a module's shared fixtures are built once).
XDIST := -n auto --dist loadfile

test: $(STAMP)
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(BIN)/python -m pytest $(XDIST) $(ARGS)

test-all: $(STAMP)
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(BIN)/python -m pytest $(XDIST) -m 'not slurm' $(ARGS)

# sweep=slurm on a real one-node SLURM cluster (opt-in, root, about 10 min): installs slurm-wlm and munge with
# apt-get if missing, starts munged, slurmctld and slurmd, runs a two-seed sweep and a requeue-on-timeout, checks
# both against a local multirun, and stops every daemon it started (tests/slurm/).
test-slurm: $(STAMP)
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(BIN)/python -m pytest -m slurm -s tests/slurm $(ARGS)

# Benchmarks: each writes benchmarks/results/<name>.json and .md (about 7 min here; bench_group_topologies builds the
# default SFT policy and generative judge into artifacts/ first if they are not there, ~5 min). Run nothing else meanwhile.
# bench_rm_training / bench_ppo create their TRL environments under benchmarks/.envs/ on first use.
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_scoring.py $(ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_rollout.py $(ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_ppo_flops.py $(ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_memory.py $(ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_rm_training.py $(ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_ppo.py $(ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_precision.py $(ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_group_topologies.py $(ARGS)

# A real-size two-job sweep three ways: one after another, sweep=local, setups side by side (about 17 min; run
# nothing else meanwhile). Writes benchmarks/results/parallel_sweep.{json,md}; docs/performance.md has the numbers.
bench-sweep: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_parallel_sweep.py $(ARGS)

# The same benchmarks on SmolLM2-135M-Instruct and HH-RLHF rows (benchmarks/real.py), written as <name>_real.*.
# About 18 min here. Fetches the model once (stage=fetch_model, ~30 s). Needs ../shared/data/hh-rlhf (or PAIRWISE_RL_HH_FILE).
REAL_MODEL := artifacts/models/smollm2_135m_instruct/config.json
$(REAL_MODEL): $(STAMP)
	$(BIN)/pairwise-rl stage=fetch_model model=smollm2_135m_instruct logger=none

bench-real: $(STAMP) $(REAL_MODEL)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_scoring.py --model smollm2 $(ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_ppo_flops.py --model smollm2 $(ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_rm_training.py --model smollm2 $(ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_ppo.py --model smollm2 $(ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_precision.py --model smollm2 $(ARGS)

# On a GPU machine (never in CI): every stage in bf16 on CUDA, tokens/s and MFU per kind of work (docs/gpu.md).
# That machine brings its own torch, lightning and transformers and may have no package index: `make gpu-wheels`
# here downloads what else the package needs into .whl/ (pure-Python wheels), which travels with the tree.
GPU_WHEELS := hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
gpu-wheels:
	$(PYTHON) -m pip download --no-deps --only-binary=:all: -d .whl $(GPU_WHEELS) || \
	  $(PYTHON) -m pip download --no-deps -d .whl $(GPU_WHEELS)

gpu-check:
	$(PYTHON) -m pip install -q --no-index --no-deps --target /tmp/gpu-check-site .whl/*
	HF_HUB_OFFLINE=1 PYTHONPATH=/tmp/gpu-check-site:. $(PYTHON) benchmarks/gpu_check.py $(ARGS)

clean:
	rm -rf outputs multirun artifacts .pytest_cache
