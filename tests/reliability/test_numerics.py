"""Numerical failures: NaN / inf stop the run with a clear message and the last good checkpoint intact, or are
skipped and counted when trainer.on_nonfinite=skip."""

import pytest
import torch

from pairwise_rl.algos.finite import nonfinite_names
from pairwise_rl.cli import run
from pairwise_rl.eval.history import read_history
from pairwise_rl.modules.guard import NonFiniteError, NonFiniteGuard
from pairwise_rl.modules.ppo import PPOModule
from pairwise_rl.pipeline import COMPLETE, artifact_dir, stage_metrics
from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.training import latest_checkpoint


def test_nonfinite_names_hand_cases():
    assert nonfinite_names(a=torch.tensor([1.0, 2.0]), b=None) == []
    assert nonfinite_names(a=torch.tensor([1.0, float("nan")]), b=torch.tensor(float("-inf")),
                           c=torch.zeros(3)) == ["a", "b"]


def test_guard_stops_or_counts():
    with pytest.raises(NonFiniteError, match="ppo step 7: non-finite reward.*on_nonfinite=skip"):
        NonFiniteGuard("stop", "ppo").ok(7, reward=torch.tensor([float("nan")]), kl=torch.zeros(1))
    guard = NonFiniteGuard("skip", "rm")
    assert guard.ok(0, loss=torch.tensor(1.0)) and not guard.ok(1, loss=torch.tensor(float("inf")))
    assert guard.skipped == 1


def _poison_rollout_rewards(monkeypatch, at_iteration: int):
    original = PPOModule.sample

    def sample(self, prompts, seed, greedy=False, group_size=1):
        samples = original(self, prompts, seed, greedy, group_size)
        if self._trainer is not None and self.trainer.training and self.iteration == at_iteration:
            samples.reward[0] = float("nan")
        return samples

    monkeypatch.setattr(PPOModule, "sample", sample)


def test_nan_reward_stops_ppo_with_the_last_good_checkpoint_intact_and_a_rerun_resumes(make_debug_cfg, monkeypatch,
                                                                                       caplog):
    cfg = make_debug_cfg("stage=ppo", "rm=bt", "ppo=standard", "ppo.iterations=6", "ppo.checkpoint_every=2",
                         "ppo.val_every=10")
    _poison_rollout_rewards(monkeypatch, at_iteration=3)
    with pytest.raises(NonFiniteError, match="ppo step 3: non-finite reward"):
        run(cfg)
    stage_dir = artifact_dir(cfg, "ppo")
    assert not (stage_dir / COMPLETE).exists()
    assert latest_checkpoint(stage_dir).endswith("step-000002.ckpt")  # saved before the NaN; loads cleanly

    monkeypatch.undo()  # the cause is fixed; the same command resumes from iteration 2
    caplog.set_level("INFO", logger="pairwise_rl.training")
    out = run(cfg)
    assert f"resuming from {stage_dir / 'checkpoints' / 'step-000002.ckpt'}" in caplog.text
    assert (out / COMPLETE).exists() and stage_metrics(out)["nonfinite_skipped"] == 0.0


def test_skip_policy_drops_the_bad_rollout_counts_it_and_finishes(make_debug_cfg, monkeypatch):
    cfg = make_debug_cfg("stage=ppo", "rm=bt", "ppo=standard", "ppo.iterations=4", "trainer.on_nonfinite=skip",
                         "ppo.val_every=10")
    _poison_rollout_rewards(monkeypatch, at_iteration=1)
    out = run(cfg)
    assert stage_metrics(out)["nonfinite_skipped"] == 1.0
    history = read_history(out)
    assert any(r.get("train/nonfinite_skipped") == 1.0 for r in history)  # the skip is in the logs too
    assert all(v == v for r in history for v in r.values())  # no NaN reached a logged metric


def test_nan_rm_loss_is_skipped_and_counted(make_debug_cfg, monkeypatch):
    original = BTReward.training_loss
    calls = []

    def training_loss(self, pairs):
        loss, stats = original(self, pairs)
        calls.append(1)
        return (loss * float("nan") if len(calls) in (3, 5) else loss), stats

    monkeypatch.setattr(BTReward, "training_loss", training_loss)
    out = run(make_debug_cfg("stage=rm", "rm=bt", "rm.max_steps=8", "trainer.on_nonfinite=skip"))
    metrics = stage_metrics(out)
    assert metrics["nonfinite_skipped"] == 2.0 and metrics["accuracy"] == metrics["accuracy"]  # finite result
