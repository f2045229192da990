"""Reading the metric history a stage logged (CSV, one file per attempt) back into step-ordered rows."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List


def read_history(stage_dir: str | Path) -> List[Dict[str, float]]:
    """All logged rows of all attempts (logs/version_N/metrics.csv), later attempts winning on repeated steps.

    Each row is {metric: value, 'step': step} with empty cells dropped; rows of one step are merged.
    """
    by_step: Dict[int, Dict[str, float]] = {}
    versions = sorted(Path(stage_dir, "logs").glob("version_*/metrics.csv"),
                      key=lambda p: int(p.parent.name.split("_")[1]))
    for path in versions:
        attempt: Dict[int, Dict[str, float]] = {}
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                step = int(float(row["step"]))
                values = {k: float(v) for k, v in row.items() if v not in ("", None) and k not in ("step", "epoch")}
                attempt.setdefault(step, {}).update(values)
        by_step.update(attempt)  # a resumed attempt replays steps after its checkpoint: keep its values
    return [{"step": float(step), **values} for step, values in sorted(by_step.items())]


def series(history: List[Dict[str, float]], metric: str) -> List[tuple[float, float]]:
    """(step, value) pairs of one metric."""
    return [(row["step"], row[metric]) for row in history if metric in row]
