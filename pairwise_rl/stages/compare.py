"""stage=compare: read a multirun directory (no network) and compare the setups across seeds.

Writes compare.md and compare.csv (mean and 95% interval over seeds per setup and metric), gold_vs_step.png (PPO
rollout gold against iteration, mean over seeds) and gold_vs_kl.png (each run's held-out gold against its KL to
the SFT policy: the reward-KL frontier).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Dict, List

from omegaconf import DictConfig

from pairwise_rl.eval.aggregate import mean_ci
from pairwise_rl.eval.history import read_history, series
from pairwise_rl.eval.io import atomic_write_text, read_json
from pairwise_rl.eval.plots import plot_gold_vs_kl, plot_gold_vs_step
from pairwise_rl.eval.report import print_table
from pairwise_rl.stages import STAGES

log = logging.getLogger(__name__)


def load_results(directory: Path) -> List[dict]:
    results = [read_json(path) for path in sorted(Path(directory).glob("**/result.json"))]
    if not results:
        raise FileNotFoundError(f"compare.dir={directory}: no result.json below it (run stage=pipeline first)")
    return results


def summarise(results: List[dict]) -> Dict[str, Dict[str, dict]]:
    """{setup: {metric: mean_ci over the runs (seeds) that have it}}."""
    values: Dict[str, Dict[str, List[float]]] = {}
    for result in results:
        for setup, metrics in result["results"].items():
            for metric, value in metrics.items():
                if value is not None:
                    values.setdefault(setup, {}).setdefault(metric, []).append(float(value))
    start_first = sorted(values, key=lambda setup: (not setup.startswith("sft"), setup))  # the baseline row first
    return {setup: {metric: mean_ci(v) for metric, v in values[setup].items()} for setup in start_first}


def _cell(stat: dict) -> str:
    if stat["n"] < 2:
        return f"{stat['mean']:.3f}"
    return f"{stat['mean']:.3f} ± {stat['half_width']:.3f}"


def write_tables(summary: Dict[str, Dict[str, dict]], seeds: List[int], out: Path) -> None:
    metrics = list(dict.fromkeys(m for setup in summary.values() for m in setup))
    setups = list(summary)
    lines = [f"Mean ± 95% t-interval over seeds {seeds} (n per cell in compare.csv).", "",
             "| metric | " + " | ".join(setups) + " |", "|---" * (len(setups) + 1) + "|"]
    for metric in metrics:
        lines.append(f"| {metric} | " + " | ".join(_cell(summary[s][metric]) if metric in summary[s] else "-"
                                                    for s in setups) + " |")
    atomic_write_text(out / "compare.md", "\n".join(lines) + "\n")
    rows = [{"setup": s, "metric": m, **stat} for s in setups for m, stat in summary[s].items()]
    with open(out / "compare.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["setup", "metric", "mean", "half_width", "n"])
        writer.writeheader()
        writer.writerows(rows)


@STAGES.register("compare")
def compare_command(cfg: DictConfig) -> Dict[str, Dict[str, dict]]:
    directory = Path(cfg.compare.dir)
    results = load_results(directory)
    summary = summarise(results)
    seeds = sorted({r["seed"] for r in results})
    write_tables(summary, seeds, directory)

    curves: Dict[str, List[List[tuple]]] = {}
    frontier: Dict[str, List[tuple]] = {}
    for result in results:
        for setup, paths in result["artifacts"].items():
            curves.setdefault(setup, []).append(series(read_history(paths["ppo"]), "train/gold/mean"))
            metrics = result["results"][setup]
            frontier.setdefault(setup, []).append((metrics["KL to SFT"], metrics["gold (sampled)"]))
    plot_gold_vs_step(curves, directory / "gold_vs_step.png")
    plot_gold_vs_kl(frontier, directory / "gold_vs_kl.png")
    print_table(f"{len(results)} runs, seeds {seeds}: mean ± 95% interval",
                {metric: {s: _cell(summary[s][metric]) for s in summary if metric in summary[s]}
                 for metric in dict.fromkeys(m for s in summary.values() for m in s)})
    log.info("wrote %s, %s and plots in %s", directory / "compare.md", directory / "compare.csv", directory)
    return summary
