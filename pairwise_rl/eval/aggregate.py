"""Across-seed statistics for the comparison table: mean and a 95% t-interval; groups compared at a matched x."""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch

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


def matched_offsets(points: Mapping[str, Sequence[Tuple[float, float]]]) -> Optional[dict]:
    """Least squares y = a + b x + c_g, one slope shared by every group and an offset c_g for each group but the
    first (c = 0, the reference): how far apart the groups' y are at the same x. For PPO gold against RM accuracy,
    whether one RM mode's policies do better than another's *given* an equally accurate RM.

    Returns {'reference', 'intercept', 'slope', 'r' (Pearson over all points; None for a constant y), 'n',
    'offsets': {group: {'mean', 'half_width', 'n'}}}, half-widths t_{0.975, n - 1 - groups} standard errors, which
    treat the points as independent; None when there are too few points (or too little spread in x) to fit."""
    groups = [g for g, p in points.items() if p]
    rows = [(1.0, float(x), *(float(g == other) for other in groups[1:]), float(y))
            for g in groups for x, y in points[g]]
    dof = len(rows) - 1 - len(groups)
    if not groups or dof < 1:
        return None
    design = torch.tensor([r[:-1] for r in rows], dtype=torch.float64)
    y = torch.tensor([r[-1] for r in rows], dtype=torch.float64)
    gram = design.T @ design
    if torch.linalg.matrix_rank(gram) < gram.shape[0]:
        return None
    coef = torch.linalg.solve(gram, design.T @ y)
    residual = y - design @ coef
    cov = torch.linalg.inv(gram) * float(residual @ residual) / dof
    xs = design[:, 1]
    r = float(torch.corrcoef(torch.stack([xs, y]))[0, 1]) if float(y.std()) > 0 else None  # constant y: undefined
    return {"reference": groups[0], "intercept": float(coef[0]), "slope": float(coef[1]), "r": r, "n": len(rows),
            "offsets": {g: {"mean": float(coef[2 + i]), "half_width": t95(dof) * math.sqrt(float(cov[2 + i, 2 + i])),
                            "n": len(points[g])} for i, g in enumerate(groups[1:])}}
