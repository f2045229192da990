"""The pooled table of docs/results.md's "In-group judging topologies" section, from the per-seed result.json files.

    .venv/bin/python docs/results/group_topologies/pooled.py                      # the files beside this script
    .venv/bin/python docs/results/group_topologies/pooled.py multirun/group_topologies   # a fresh run's directory

Each topology's held-out gold against all_pairs and against the anchor, paired within a seed and a cell (estimator
x group size), then mean +- 95% t over the 12 differences (2 estimators x 2 sizes x 3 seeds). The cells of one seed
share its SFT policy and judge, so the interval is descriptive, not a test. stage=compare gives each single
contrast over seeds (compare.baseline / compare.pairs); this pools the contrasts that ask the same question.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List

from pairwise_rl.eval.aggregate import mean_ci

GOLD, KL, ROWS, SECONDS = "gold (sampled)", "KL to SFT", "judge rows / iteration", "PPO s / iteration"
CELLS = [(estimator, n) for estimator in ("grpo", "rloo") for n in (4, 8)]
LINEAR = ["circular", "random_reference", "knockout", "k_random"]


def read_runs(directory: Path) -> List[Dict[str, dict]]:
    files = sorted(directory.glob("result_seed*.json")) or sorted(directory.glob("*/result.json"))
    if not files:
        raise SystemExit(f"{directory}: no result_seed*.json or */result.json")
    return [json.loads(path.read_text())["results"] for path in files]


def cell(stat: dict, values: List[float]) -> str:
    above = sum(v > 0 for v in values)
    return f"{stat['mean']:+.3f} ± {stat['half_width']:.3f} ({above}/{len(values)} > 0)"


def differences(runs, setup: str, baseline: str, cells=CELLS) -> List[float]:
    return [run[f"n{n}_{e}_{setup}"][GOLD] - run[f"n{n}_{e}_{baseline}"][GOLD] for run in runs for e, n in cells]


def main(directory: Path) -> None:
    runs = read_runs(directory)
    print(f"{len(runs)} seeds; pooled over {len(CELLS) * len(runs)} estimator x n x seed cells\n")
    print("| topology | judge rows / iteration, n = 4 / n = 8 | PPO s / iteration | gold − all_pairs | "
          "gold − anchor | KL to SFT |")
    print("|---|---|---|---|---|---|")
    for topology in ["anchor", "all_pairs", *LINEAR]:
        rows = " / ".join(f"{runs[0][f'n{n}_grpo_{topology}'][ROWS]:g}" for n in (4, 8))
        seconds = mean_ci([run[f"n{n}_{e}_{topology}"][SECONDS] for run in runs for e, n in CELLS])
        kl = mean_ci([run[f"n{n}_{e}_{topology}"][KL] for run in runs for e, n in CELLS])
        vs = {base: differences(runs, topology, base) for base in ("all_pairs", "anchor") if base != topology}
        shown = {base: cell(mean_ci(v), v) for base, v in vs.items()}
        print(f"| {topology} | {rows} | {seconds['mean']:.3f} ± {seconds['half_width']:.3f} | "
              f"{shown.get('all_pairs', '')} | {shown.get('anchor', '')} | {kl['mean']:.3f} ± {kl['half_width']:.3f} |")
    print("\nn = 8 with a linear topology − n = 4 all_pairs (2 estimators x seeds):")
    for topology in LINEAR:
        v = [run[f"n8_{e}_{topology}"][GOLD] - run[f"n4_{e}_all_pairs"][GOLD] for run in runs for e in ("grpo", "rloo")]
        print(f"  {topology}: {cell(mean_ci(v), v)}")
    every = [run[s][GOLD] - run["sft (start)"][GOLD] for run in runs for s in run if s != "sft (start)"]
    print(f"\nevery PPO run − its seed's start: {cell(mean_ci(every), every)}")
    names = [f"n4_{e}_all_pairs_mean_win" for e in ("grpo", "rloo")]
    if all(name in runs[0] for name in names):  # the round robin rated by mean_win, as the estimators ablation did
        for baseline in ("all_pairs", "anchor"):
            v = [run[name][GOLD] - run[name.replace("all_pairs_mean_win", baseline)][GOLD]
                 for run in runs for name in names]
            label = "all_pairs by bradley_terry" if baseline == "all_pairs" else baseline
            print(f"n = 4 all_pairs by mean_win − {label} (2 estimators x seeds): {cell(mean_ci(v), v)}")

if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
