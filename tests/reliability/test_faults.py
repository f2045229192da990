"""Faults: SIGKILL at a random point, corrupt checkpoints, interrupted writes. A rerun loses nothing."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from pairwise_rl.cli import run
from pairwise_rl.pipeline import COMPLETE, StageContext, artifact_dir, is_complete, stage_metrics
from pairwise_rl.training import AtomicCheckpointIO, latest_checkpoint
from tests.conftest import ROOT

KILL_SEED = int(os.environ.get("PAIRWISE_RL_KILL_SEED", "0"))  # the kill point is random, and reproducible


def _command(cache: Path, out: Path, overrides) -> list:
    return [sys.executable, "-m", "pairwise_rl.cli", "debug=fast", *overrides, f"paths.cache_dir={cache}",
            f"hydra.run.dir={out}"]


def _kill_after_first_checkpoint(command, stage_dir: Path, rng: random.Random, timeout: float = 240.0) -> bool:
    """Start the command, wait for its first checkpoint, SIGKILL it a random moment later. True if it was killed
    mid-run (False if it finished first, which would make the test vacuous)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not list((stage_dir / "checkpoints").glob("step-*.ckpt")):
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            raise AssertionError(f"no checkpoint appeared in {stage_dir} (exit code {process.returncode})")
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.0))
    killed = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    return killed


# The PPO kills (30 s each) run in `make test-all`; the RM kill is their fast twin in `make test`, and PPO's exact
# resume is also held in-process by tests/stages/test_ppo.py (a crashed run resumes like an uninterrupted one).
@pytest.mark.parametrize("stage,overrides", [
    pytest.param("ppo", ("stage=ppo", "rm=bt", "ppo=pairwise", "ppo.iterations=16", "ppo.checkpoint_every=2"),
                 marks=pytest.mark.slow),
    pytest.param("ppo", ("stage=ppo", "rm=generative", "ppo.reward=group", "ppo.advantage=grpo",
                         "ppo.samples_per_prompt=4", "ppo.group.topology=random_reference", "ppo.both_orders=false",
                         "eval.batch_size=24", "ppo.iterations=16", "ppo.checkpoint_every=2"),
                 marks=pytest.mark.slow),  # random matches and order coins, drawn again alike
    ("rm", ("stage=rm", "rm=generative", "rm.max_steps=60", "rm.checkpoint_every=10", "rm.val_every=30")),
])
def test_sigkill_then_the_same_command_ends_like_an_uninterrupted_run(stage, overrides, make_debug_cfg, tmp_path):
    cfg = make_debug_cfg(*overrides)
    uninterrupted = run(cfg)  # in-process reference (builds the shared SFT / RM it needs)
    reference = tmp_path / "reference"
    shutil.move(str(uninterrupted), reference)  # so the subprocess builds the same artifact from scratch

    cache = Path(cfg.paths.cache_dir)
    stage_dir = artifact_dir(cfg, stage)
    command = _command(cache, tmp_path / "run", overrides)
    killed = _kill_after_first_checkpoint(command, stage_dir, random.Random(f"{KILL_SEED}/{stage}"))
    assert killed, "the run finished before the kill; raise its step budget"
    assert not is_complete(stage_dir)  # the cache must not serve the half-built artifact

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert is_complete(stage_dir)
    resumed, expected = stage_metrics(stage_dir), stage_metrics(reference)
    assert resumed == expected


def _tiny_checkpoint(path: Path, value: float) -> None:
    torch.save({"state_dict": {"w": torch.full((256,), value)}, "global_step": int(value)}, path)


def test_a_truncated_newest_checkpoint_is_reported_and_the_previous_one_used(tmp_path, caplog):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    _tiny_checkpoint(ckpts / "step-000002.ckpt", 2)
    _tiny_checkpoint(ckpts / "step-000004.ckpt", 4)
    data = (ckpts / "step-000004.ckpt").read_bytes()
    (ckpts / "step-000004.ckpt").write_bytes(data[: len(data) // 2])  # a torn write from a non-atomic writer
    assert latest_checkpoint(tmp_path) == str(ckpts / "step-000002.ckpt")
    assert "step-000004.ckpt is unreadable" in caplog.text

    (ckpts / "step-000002.ckpt").write_bytes(b"garbage")
    assert latest_checkpoint(tmp_path) is None  # nothing usable: the stage starts over, it does not crash


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    target = tmp_path / "step-000004.ckpt"
    _tiny_checkpoint(target, 1)
    before = target.read_bytes()

    def torn_save(self, checkpoint, path, storage_options=None):  # the process dies halfway through the write
        Path(path).write_bytes(b"half a checkpoi")
        raise OSError("disk full")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", torn_save)
    with pytest.raises(OSError, match="disk full"):
        AtomicCheckpointIO().save_checkpoint({"x": 1}, target)
    assert target.read_bytes() == before  # the old file is untouched; the torn bytes went to a temporary file
    assert not [p for p in tmp_path.iterdir() if p.name != target.name and not p.name.startswith(".")]


def test_a_crashed_stage_leaves_no_complete_marker_and_is_resumed(make_debug_cfg, monkeypatch):
    from pairwise_rl.stages import rm as rm_stage

    cfg = make_debug_cfg("stage=rm", "rm=bt", "rm.max_steps=12", "rm.checkpoint_every=4")
    original = rm_stage.judge_pairs
    calls = []

    def crash_at_final_eval(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # [before training, validation pairs, test pairs]: crash after training, before COMPLETE
            raise RuntimeError("power cut")
        return original(*args, **kwargs)

    monkeypatch.setattr(rm_stage, "judge_pairs", crash_at_final_eval)
    with pytest.raises(RuntimeError, match="power cut"):
        run(cfg)
    stage_dir = artifact_dir(cfg, "rm")
    assert not (stage_dir / COMPLETE).exists() and latest_checkpoint(stage_dir).endswith("step-000012.ckpt")
    out = run(cfg)  # resumes at step 12: no training left, only the evaluation
    assert out == stage_dir and (out / COMPLETE).exists()
    assert len(calls) == 4  # validation and test again; the before-training evaluation was read back, not rerun


@pytest.mark.parametrize("stage,overrides,evaluations", [
    ("ppo", ("stage=ppo", "rm=bt", "ppo.iterations=4", "ppo.checkpoint_every=2"), "evaluate_sft.json"),
    ("sft", ("stage=sft", "sft.max_steps=20", "sft.checkpoint_every=10"), "evaluate_untrained.json"),
])
def test_a_resumed_stage_reuses_its_before_training_evaluation_and_ends_the_same(stage, overrides, evaluations,
                                                                               make_debug_cfg, monkeypatch, tmp_path):
    """Resume does only the remaining work: the evaluation before training is saved in the stage's directory on
    the first attempt and read back by the next, with the same final numbers as an uninterrupted build."""
    from pairwise_rl.stages import ppo as ppo_stage
    from pairwise_rl.stages import sft as sft_stage

    module = {"ppo": ppo_stage, "sft": sft_stage}[stage]
    cfg = make_debug_cfg(*overrides)
    uninterrupted = run(cfg)
    expected = stage_metrics(uninterrupted)
    shutil.move(str(uninterrupted), tmp_path / "reference")  # the next run builds the same artifact again

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")  # dies after the evaluation before training, as a SIGKILL would

    monkeypatch.setattr(module, "fit", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        run(cfg)
    stage_dir = artifact_dir(cfg, stage)
    saved = stage_dir / evaluations
    assert saved.is_file() and not (stage_dir / COMPLETE).exists()
    saved_at = saved.stat().st_mtime_ns

    monkeypatch.undo()
    timed = []
    real_timed = StageContext.timed
    monkeypatch.setattr(StageContext, "timed", lambda self, phase: (timed.append(phase), real_timed(self, phase))[1])
    assert run(cfg) == stage_dir
    assert stage_metrics(stage_dir) == expected
    assert saved.stat().st_mtime_ns == saved_at  # read back, not rewritten
    assert "train" in timed and not any(phase.startswith("evaluate ") for phase in timed)
