"""Plots written as PNG beside the numbers they show (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

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


def plot_frontiers(frontiers: Mapping[str, Sequence[Sequence[tuple]]], at: Sequence[float], path: Path,
                   ylabel: str = "held-out gold (sampled)") -> Path:
    """Each arm's gold-against-KL frontier, one line per seed (its runs over the KL budget and the start at KL 0),
    with the KLs at which compare.matched_kl reads them as dotted lines."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (arm, lines) in enumerate(frontiers.items()):
        for j, points in enumerate(lines):
            ax.plot([kl for kl, _ in points], [g for _, g in points], marker="o", markersize=3, linewidth=1,
                    color=colors[i % len(colors)], alpha=0.8, label=arm if j == 0 else None)
    for k in at:
        ax.axvline(k, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="KL to SFT (nats / response)", ylabel=ylabel, title="Frontiers per arm (a line per seed)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_reliability_by_group(diagrams: Mapping[str, Mapping[str, Reliability]], path: Path,
                              title: str = "RM reliability per prompt kind") -> Path:
    """One reliability panel per group (digits: prompt kind), a line per RM in each: whether one RM is calibrated
    in every context or only on average."""
    groups = list(diagrams)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 4.4), squeeze=False)
    for ax, group in zip(axes[0], groups):
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        for name, rel in diagrams[group].items():
            points = [(c, f) for c, f, n in zip(rel.confidence, rel.frequency, rel.count) if n]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=f"{name} (ECE {rel.ece:.3f})")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted P(y1 beats y2)", title=group)
        ax.legend(fontsize=6, loc="upper left")
    axes[0][0].set_ylabel("observed frequency y1 chosen")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_scaling(curves: Mapping[str, Mapping[str, list]], path: Path) -> Path:
    """Panels of metric against preference pairs (log x): curves[panel]["mode: column"] = [(pairs, mean,
    half_width), ...], error bars the 95% interval over seeds (none where only one seed has the point). One colour
    per RM mode across panels; within a panel, one line style per column (solid first, then dashed, dotted)."""
    parts = {name: name.split(": ", 1) for lines in curves.values() for name in lines}  # name -> [mode, column]
    colours = {mode: f"C{i}" for i, mode in enumerate(dict.fromkeys(mode for mode, _ in parts.values()))}
    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 4.2), squeeze=False)
    for ax, (panel, lines) in zip(axes[0], curves.items()):
        columns = list(dict.fromkeys(parts[name][1] for name in lines))
        sizes = sorted({x for points in lines.values() for x, _, _ in points})
        for name, points in lines.items():
            mode, column = parts[name]
            xs, means, widths = zip(*sorted(points))
            ax.errorbar(xs, means, yerr=[0.0 if w != w else w for w in widths], marker="o", capsize=3,
                        color=colours[mode], label=name, linestyle=["-", "--", ":", "-."][columns.index(column) % 4])
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())  # ticks at the measured sizes only, labelled 1.5k, 3k, ...
        ax.set_xticks(sizes, [f"{x / 1000:g}k" if x >= 1000 else str(x) for x in sizes])
        ax.set(xlabel="preference pairs (RM training set)", ylabel=panel, title=panel)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_gold_vs_rm_accuracy(points: Mapping[str, list], path: Path, xlabel: str = "RM gold accuracy") -> Path:
    """Each run's held-out PPO gold against the accuracy of the RM it was trained on, per RM mode: how much of the
    policy's quality a better RM buys."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for mode, pairs in points.items():
        ax.scatter([x for x, _ in pairs], [y for _, y in pairs], label=f"{mode} (n={len(pairs)})")
    ax.set(xlabel=xlabel, ylabel="held-out gold (sampled) after PPO", title="Policy gold against RM accuracy")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_quality_vs_judge_rows(points: Mapping[str, tuple], path: Path,
                               ylabel: str = "held-out gold (sampled)") -> Path:
    """Each setup's held-out quality (mean, 95% interval over seeds) against the judge rows its reward reads per PPO
    iteration (log x): what a reward form or comparison topology buys for its judge cost. points[setup] = (rows,
    mean, half_width). Setups at the same cost are spread a little along x so their intervals stay apart; each is
    labelled beside its point."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    at_cost: Dict[float, List[str]] = {}
    for setup, (rows, _, _) in points.items():
        at_cost.setdefault(rows, []).append(setup)
    for i, (setup, (rows, mean, width)) in enumerate(points.items()):
        same = at_cost[rows]
        x = rows * 1.04 ** (same.index(setup) - (len(same) - 1) / 2)
        ax.errorbar([x], [mean], yerr=[0.0 if width != width else width], marker="o", markersize=3, capsize=2,
                    color=f"C{i % 10}")
        ax.annotate(setup, (x, mean), fontsize=5, xytext=(3, 1), textcoords="offset points")
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(sorted(at_cost), [f"{x:g}" for x in sorted(at_cost)])
    ax.set(xlabel="judge rows per PPO iteration", ylabel=ylabel, title="Held-out quality against judge cost")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    if distributed.is_main():  # every rank draws the same figure; one writes it
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
