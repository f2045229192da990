"""Plots written as PNG beside the numbers they show (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pairwise_rl import distributed  # noqa: E402
from pairwise_rl.eval.metrics import Reliability  # noqa: E402


def plot_reliability(diagrams: Mapping[str, Reliability], path: Path, title: str = "RM reliability") -> Path:
    """Observed frequency of 'y1 chosen' against the judge's P(y1 beats y2), per equal-width bin."""
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for name, rel in diagrams.items():
        points = [(c, f, n) for c, f, n in zip(rel.confidence, rel.frequency, rel.count) if n]
        if not points:
            continue
        conf, freq, count = zip(*points)
        ax.plot(conf, freq, marker="o", label=f"{name} (ECE {rel.ece:.3f})")
        for x, y, n in points[:: max(1, len(points) // 5)]:
            ax.annotate(str(n), (x, y), fontsize=6, alpha=0.6)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted P(y1 beats y2)", ylabel="observed frequency y1 chosen",
           title=title)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def plot_gold_vs_step(curves: Mapping[str, list], path: Path) -> Path:
    """PPO rollout gold against iteration per setup: the mean over runs (seeds) at each logged step."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for setup, runs in curves.items():
        by_step: dict = {}
        for run in runs:
            for step, value in run:
                by_step.setdefault(step, []).append(value)
        steps = sorted(by_step)
        ax.plot(steps, [sum(by_step[s]) / len(by_step[s]) for s in steps], label=f"{setup} (n={len(runs)})")
    ax.set(xlabel="PPO iteration", ylabel="gold score of rollouts", title="Gold score during PPO")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_gold_vs_kl(points: Mapping[str, list], path: Path, ylabel: str = "held-out gold (sampled)") -> Path:
    """Each run's held-out quality (gold, or the independent judge's win rate) against its KL to the SFT policy:
    the reward-KL frontier."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for setup, pairs in points.items():
        ax.scatter([kl for kl, _ in pairs], [quality for _, quality in pairs], label=setup)
    ax.set(xlabel="KL to SFT (nats / response)", ylabel=ylabel, title="Held-out quality against KL")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    if distributed.is_main():  # every rank draws the same figure; one writes it
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
