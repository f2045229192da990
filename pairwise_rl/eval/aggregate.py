"""Across-seed statistics for the comparison table: mean and a 95% t-interval."""

from __future__ import annotations

import math
from typing import Dict, Sequence

# Two-sided 95% Student-t quantiles by degrees of freedom (n - 1); large n falls back to the normal 1.96.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       15: 2.131, 20: 2.086, 30: 2.042}


def t95(dof: int) -> float:
    if dof in T95:
        return T95[dof]
    smaller = [d for d in T95 if d <= dof]
    return T95[max(smaller)] if dof <= 30 else 1.96


def mean_ci(values: Sequence[float]) -> Dict[str, float]:
    """{'mean', 'half_width', 'n'}: mean +- t_{0.975, n-1} * sd / sqrt(n); one value has no interval (nan)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "half_width": float("nan"), "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return {"mean": mean, "half_width": t95(n - 1) * sd / math.sqrt(n), "n": n}
