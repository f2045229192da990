"""What the judges measure before any preference training, per seed: docs/results.md's pretrained-judge section.

    .venv/bin/python docs/results/pretrained_judge/before_training.py multirun/pretrained_judge

Reads every result.json below the directory, follows its artifacts to each RM's `evaluate_before_training.json`
(written by stage=rm before its first step, on the same held-out pairs as the trained RM) and prints accuracy on
the labels, gold accuracy and position consistency for the generative judge from the SFT policy (the 1k RM of the
pairwise_rl setup) and both judges at random weights. Needs the run's artifact cache, not only its result files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pairwise_rl.eval.aggregate import mean_ci

SETUPS = {"generative, SFT policy": "pairwise_rl", "BT, SFT policy": "traditional",
          "generative, random weights": "generative_1k_random", "BT, random weights": "bt_1k_random"}
METRICS = {"accuracy": "accuracy", "gold accuracy": "gold_accuracy", "ECE": "ece",
           "position consistency": "position_consistency"}


def main(directory: Path) -> None:
    files = sorted(directory.glob("**/result.json"))
    if not files:
        raise SystemExit(f"{directory}: no result.json below it")
    rows = {label: {name: [] for name in METRICS} for label in SETUPS}
    for path in files:
        result = json.loads(path.read_text())
        for label, setup in SETUPS.items():
            rm_dir = Path(result["artifacts"][setup]["rm"])
            before = json.loads((rm_dir / "evaluate_before_training.json").read_text())["result"]
            for name, key in METRICS.items():
                if before.get(key) is not None:
                    rows[label][name].append(before[key])
    print(f"before training, {len(files)} seeds: mean +- 95% t (per seed)")
    for label, values in rows.items():
        cells = [f"{name} {ci['mean']:.3f} +- {ci['half_width']:.3f} ({' '.join(f'{x:.3f}' for x in v)})"
                 for name, v in values.items() if v for ci in [mean_ci(v)]]
        print(f"  {label:28s} " + ", ".join(cells))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "multirun/pretrained_judge"))
