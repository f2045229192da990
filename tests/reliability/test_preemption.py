"""A stage told it will stop (SIGTERM, SIGUSR1, SIGUSR2: preemption, SLURM's time limit, submitit's warning) saves
the steps it has done before it goes, and a wall-clock interval saves between step intervals; either way the
resumed result is bit-identical to an uninterrupted one."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from pairwise_rl.checks import ConfigError
from pairwise_rl.cli import run
from pairwise_rl.config import validate
from pairwise_rl import stages  # noqa: F401 -- registers the artifact stages artifact_dir reads
from pairwise_rl.pipeline import CHECKPOINT_DIR, artifact_dir, is_complete, stage_metrics
from tests.conftest import ROOT

# No step checkpoint before the end (interval 1000 > 300 steps): whatever is saved mid-run came from the signal.
SFT = ("stage=sft", "sft.max_steps=300", "sft.checkpoint_every=1000", "sft.val_every=1000")


def _steps(stage_dir):
    return sorted(int(p.stem.split("-")[1]) for p in (stage_dir / CHECKPOINT_DIR).glob("step-*.ckpt"))


def _when_training(stage_dir, action, delay=1.0, timeout=120.0):
    """Run `action` `delay` seconds after the stage saved its evaluation before training (training starts next)."""
    deadline = time.time() + timeout
    while not (stage_dir / "evaluate_untrained.json").exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    action()


def test_sigterm_mid_stage_saves_the_steps_done_and_the_rerun_ends_like_an_uninterrupted_run(make_cfg, tmp_path):
    cfg = make_cfg("debug=fast", *SFT)
    expected = stage_metrics(run(cfg))  # in-process reference
    stage_dir = artifact_dir(cfg, "sft")
    shutil.move(str(stage_dir), tmp_path / "reference")  # the CLI builds the same artifact again

    command = [sys.executable, "-m", "pairwise_rl.cli", "debug=fast", *SFT, f"paths.cache_dir={cfg.paths.cache_dir}",
               f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    _when_training(stage_dir, lambda: None)
    assert process.poll() is None, "the stage ended before the signal; raise sft.max_steps"
    process.send_signal(signal.SIGTERM)
    output = process.stdout.read()
    assert process.wait() == 143, output[-3000:]  # 128 + SIGTERM: stopped on purpose, resumable
    assert "told to stop (SIGTERM): saved the checkpoint of step" in output
    (step,) = _steps(stage_dir)
    assert 0 < step < 300 and not is_complete(stage_dir)

    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    assert is_complete(stage_dir) and stage_metrics(stage_dir) == expected


def test_a_signal_with_a_handler_of_its_own_is_handed_on_after_the_checkpoint(make_cfg, tmp_path):
    """SIGUSR2 as submitit uses it: the checkpoint is saved, then the handler that was there before runs (submitit
    would requeue the job; this one only counts), and a run that is not stopped ends as if nothing happened."""
    calls = []
    previous = signal.signal(signal.SIGUSR2, lambda number, frame: calls.append(number))
    cfg = make_cfg("debug=fast", *SFT, "paths.keep_checkpoints=true")
    sender = threading.Thread(target=_when_training, args=(artifact_dir(cfg, "sft"),
                                                           lambda: os.kill(os.getpid(), signal.SIGUSR2)))
    try:
        sender.start()
        out = run(cfg)
        sender.join()
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert calls == [signal.SIGUSR2]
    (signalled,) = _steps(out)  # the signal's checkpoint: the step interval (1000) never came
    assert 0 < signalled < 300
    uninterrupted = make_cfg("debug=fast", *SFT)
    uninterrupted.paths.cache_dir = str(tmp_path / "uninterrupted")
    assert stage_metrics(run(uninterrupted)) == stage_metrics(out)


def test_a_wall_clock_interval_saves_between_step_intervals(make_cfg):
    out = run(make_cfg("debug=fast", "stage=sft", "sft.max_steps=12", "sft.checkpoint_every=1000",
                             "trainer.checkpoint_every_minutes=0.00001", "paths.keep_checkpoints=true"))
    assert _steps(out) == [11, 12]  # every step was due by the clock; the newest two are kept


@pytest.mark.parametrize("override, message", [
    ("trainer.checkpoint_every_minutes=-1", "trainer.checkpoint_every_minutes: must be >= 0"),
    ("trainer.checkpoint_signals=[TERM,HUP]", "trainer.checkpoint_signals: 'HUP' is not one of"),
])
def test_bad_checkpoint_settings_are_config_errors(make_cfg, override, message):
    with pytest.raises(ConfigError, match=message.replace("[", "\\[")):
        validate(make_cfg(override))
