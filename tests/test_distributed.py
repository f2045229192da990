"""trainer=fsdp | ddp end to end: the real CLI starts 2 CPU ranks itself (torchrun, gloo) and builds every stage.

What must hold: the ranks really shard (each holds half of the policy), the files are written once, the training
curves equal a single process's (batch sizes are global, each rank takes its slice), a run resumes exactly from
a full-state checkpoint, and ddp (replicated weights) trains the same curves as fsdp.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from pairwise_rl import distributed
from pairwise_rl.config import ConfigError, validate

pytestmark = pytest.mark.timeout(600)

STAGES = ("sft", "pairs", "rm", "ppo")


def _cli(cache: Path, run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop(distributed.RELAUNCHED, None)
    return subprocess.run([sys.executable, "-m", "pairwise_rl.cli", "debug=fast", f"paths.cache_dir={cache}",
                           f"hydra.run.dir={run_dir}", *overrides], env=env, capture_output=True, text=True,
                          timeout=400)


def _artifact(cache: Path, stage: str) -> Path:
    (path,) = cache.glob(f"{stage}-*")
    return path


def _complete(cache: Path, stage: str) -> dict:
    return json.loads((_artifact(cache, stage) / "COMPLETE.json").read_text())


def _losses(cache: Path, stage: str) -> list:
    with open(_artifact(cache, stage) / "logs" / "version_0" / "metrics.csv", newline="") as handle:
        return [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]


@pytest.fixture(scope="module")
def fsdp_cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fsdp")
    # kept checkpoints: the resume test below turns the complete PPO back into an interrupted one
    result = _cli(root / "art", root / "run", "stage=ppo", "trainer=fsdp", "paths.keep_checkpoints=true")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root / "art"


def test_fsdp_builds_every_stage_on_two_sharded_ranks(fsdp_cache):
    for stage in STAGES:
        assert _complete(fsdp_cache, stage)["world_size"] == 2, stage
    # each rank holds half of every model it trains (the RM's 1-row score head cannot split: slightly over 0.5)
    assert _complete(fsdp_cache, "sft")["metrics"]["local_param_fraction"] == 0.5
    assert _complete(fsdp_cache, "ppo")["metrics"]["local_param_fraction"] == 0.5
    assert 0.5 <= _complete(fsdp_cache, "rm")["metrics"]["local_param_fraction"] < 0.51
    # files are written once, by rank 0: the held-out samples are exactly one evaluation's rows, for sft and ppo
    # (12 prompts x 4 samples + 12 greedy each), and each rank logged to its own file
    rows = (_artifact(fsdp_cache, "ppo") / "samples.jsonl").read_text().splitlines()
    assert len(rows) == 2 * (12 * 4 + 12)
    assert all(json.loads(row)["model"] in ("sft", "ppo") for row in rows)
    run_dir = fsdp_cache.parent / "run"
    assert (run_dir / "rank_0.log").exists() and (run_dir / "rank_1.log").exists()


def test_fsdp_export_gathers_the_full_trained_weights(fsdp_cache):
    from pairwise_rl.models.factory import load_causal_lm

    # the PPO export is the sharded policy gathered on rank 0: complete, and changed by training
    ppo = load_causal_lm(str(_artifact(fsdp_cache, "ppo") / "hf")).state_dict()
    sft = load_causal_lm(str(_artifact(fsdp_cache, "sft") / "hf")).state_dict()
    assert ppo.keys() == sft.keys()
    assert all(torch.isfinite(value).all() for value in ppo.values())
    assert any(not torch.equal(ppo[name], sft[name]) for name in ppo)


def test_fsdp_trains_the_same_curves_as_one_process(fsdp_cache, tmp_path):
    result = _cli(tmp_path / "art", tmp_path / "run", "stage=rm")
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in ("sft", "rm"):
        single, sharded = _losses(tmp_path / "art", stage), _losses(fsdp_cache, stage)
        assert len(single) == len(sharded) > 5
        # step 1 is the same computation split over two ranks; later steps drift only by float reduction order
        assert sharded[0] == pytest.approx(single[0], abs=1e-4), stage
        assert sharded == pytest.approx(single, abs=5e-3), stage


@pytest.mark.slow  # 22-47 s; fast twins: the single-process exact resumes in tests/stages/test_ppo.py
def test_fsdp_resumes_exactly_from_a_full_state_checkpoint(fsdp_cache, tmp_path):
    cache = tmp_path / "art"
    shutil.copytree(fsdp_cache, cache)
    ppo = _artifact(cache, "ppo")
    (ppo / "COMPLETE.json").unlink()  # as if killed after the step-2 checkpoint
    (ppo / "checkpoints" / "step-000003.ckpt").unlink()
    result = _cli(cache, tmp_path / "run", "stage=ppo", "trainer=fsdp")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in result.stdout + result.stderr and "step-000002.ckpt" in result.stdout + result.stderr
    assert _complete(cache, "ppo")["metrics"] == _complete(fsdp_cache, "ppo")["metrics"]


@pytest.mark.slow  # 26-39 s; fast twin: tests/models/test_sharding.py's two-rank PPO step
def test_a_critic_free_group_cell_runs_on_two_sharded_ranks(fsdp_cache, tmp_path):
    cache = tmp_path / "art"
    shutil.copytree(fsdp_cache, cache)  # the SFT policy and RM, built on two ranks
    cell = ("ppo.reward=group", "ppo.advantage=grpo", "ppo.samples_per_prompt=2", "eval.samples_per_prompt=2")
    result = _cli(cache, tmp_path / "run", "stage=ppo", "trainer=fsdp", "paths.keep_checkpoints=true", *cell)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (grpo,) = [p for p in cache.glob("ppo-*") if p.name != _artifact(fsdp_cache, "ppo").name]
    marker = json.loads((grpo / "COMPLETE.json").read_text())
    assert marker["world_size"] == 2 and marker["metrics"]["local_param_fraction"] == 0.5
    checkpoint = torch.load(sorted((grpo / "checkpoints").glob("*.ckpt"))[-1], weights_only=False)
    assert not any(k.startswith("critic.") for k in checkpoint["state_dict"])
    with open(grpo / "logs" / "version_0" / "metrics.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("train/judge/rows")]
    # 8 prompts x 2 samples over 2 ranks: each rank judges its own 4 groups (BT: one score per sample)
    assert len(rows) == 3 and all(float(r["train/judge/rows"]) == 8 for r in rows)


@pytest.mark.slow  # 25-32 s; fast twin: test_fsdp_trains_the_same_curves_as_one_process (one strategy, other mesh)
def test_ddp_replicates_the_weights_and_trains_the_same_curves_as_fsdp(fsdp_cache, tmp_path):
    result = _cli(tmp_path / "art", tmp_path / "run", "stage=rm", "trainer=ddp")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _complete(tmp_path / "art", "rm")["world_size"] == 2
    assert _complete(tmp_path / "art", "rm")["metrics"]["local_param_fraction"] == 1.0
    for stage in ("sft", "rm"):
        assert _losses(tmp_path / "art", stage) == pytest.approx(_losses(fsdp_cache, stage), abs=1e-4), stage


# ------------------------------------------------------------------------------------------- single process
def test_relaunch_command_reruns_the_cli_under_torchrun_in_the_same_run_dir():
    command = distributed.relaunch_command(4, ["stage=rm", "trainer=fsdp"], "/runs/x")
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4"]
    assert command[5:9] == ["-m", "pairwise_rl.cli", "stage=rm", "trainer=fsdp"]
    assert "hydra.run.dir=/runs/x" in command and "hydra.output_subdir=null" in command


def test_world_size_comes_from_the_strategy():
    trainer = OmegaConf.create({"strategy": "fsdp", "devices": 4, "num_nodes": 2})
    assert distributed.requested_world_size(trainer) == 8
    assert distributed.requested_world_size(OmegaConf.merge(trainer, {"strategy": "auto"})) == 1
    # one process: every rank-aware helper is the identity
    assert distributed.rank_slice([1, 2, 3]) == [1, 2, 3]
    assert distributed.broadcast("x") == "x" and distributed.all_true(False) is False
    assert distributed.gather_objects(3) == [3]


@pytest.mark.parametrize("overrides, key", [
    (["trainer=fsdp", "trainer.devices=3"], "sft.batch_size"),  # 16 rows do not split over 3 ranks
    (["trainer=ddp", "trainer.devices=2", "ppo.minibatch_size=3", "ppo.rollout_batch_size=9"],
     "ppo.rollout_batch_size"),
    (["trainer.activation_checkpointing=true"], "trainer.activation_checkpointing"),
    (["trainer.offload_frozen=true"], "trainer.offload_frozen"),
])
def test_parallel_settings_are_validated(overrides, key, make_debug_cfg):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(make_debug_cfg(*overrides))
