"""Gold at matched KL: each arm's gold-against-KL frontier, read at the same KL for every arm (Gao et al. 2022).

Two setups run at one KL target need not spend the same KL: an arm whose reward is small against beta * KL stops
short, and a gold difference between them then mixes reward quality with how far each policy moved. A frontier per
arm and seed comes from a sweep over the KL budget (`sweep=kl_target`: the setup's runs become
`name [ppo.kl.target=0.1]`, ...), each run a point (its held-out KL, its held-out gold), plus the shared start (KL 0,
the SFT policy's gold). Gold at KL k is the piecewise-linear interpolation between the two points around k, never an
extrapolation: a seed whose arm never reached k has no value there, and the table says how many seeds had one.
Differences are paired within each seed (one SFT policy, one set of pairs), then a mean with a 95% t-interval.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

from pairwise_rl.comparison.load import START_ROW
from pairwise_rl.eval.aggregate import mean_ci

KL = "KL to SFT"
GOLD = "gold (sampled)"
SWEEP_LABEL = re.compile(r"^(?P<base>.+?) \[(?P<label>[^\]]*)\]$")  # eval/runs.disambiguate's renaming

Point = Tuple[float, float]  # (KL, gold)
Frontiers = Dict[str, List[Point]]  # one seed's: {arm: points}


def arm_of(setup: str) -> str:
    """The setup name before any sweep label: 'pairwise_rl [ppo.kl.target=0.1]' -> 'pairwise_rl'."""
    match = SWEEP_LABEL.match(setup)
    return match.group("base") if match else setup


def frontiers(result: dict, kl: str = KL, gold: str = GOLD) -> Frontiers:
    """{arm: (KL, gold) points sorted by KL} of one seed's run: every setup of the arm, and the start at KL 0."""
    rows = result["results"]
    start = rows.get(START_ROW, {})
    points: Dict[str, List[Point]] = {}
    for setup, row in rows.items():
        if setup == START_ROW or row.get(kl) is None or row.get(gold) is None:
            continue
        points.setdefault(arm_of(setup), []).append((float(row[kl]), float(row[gold])))
    if start.get(gold) is not None:
        for arm_points in points.values():
            arm_points.append((0.0, float(start[gold])))
    return {arm: sorted(set(p)) for arm, p in points.items()}


def gold_at(points: Sequence[Point], k: float) -> Optional[float]:
    """Piecewise-linear gold at KL k between the frontier's points (sorted by KL); None outside their range. Two
    points at the same KL (two budgets that spent the same) are averaged."""
    if not points or k < points[0][0] or k > points[-1][0]:
        return None
    merged: Dict[float, List[float]] = {}
    for x, y in points:
        merged.setdefault(x, []).append(y)
    xs = sorted(merged)
    ys = [sum(merged[x]) / len(merged[x]) for x in xs]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x0 <= k <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (k - x0) / (x1 - x0)
    return ys[0]  # a single point, at k


def matched_kl(per_seed: Sequence[Frontiers], pairs: Sequence[Tuple[str, str]], at: Sequence[float]
               ) -> Dict[str, dict]:
    """{'setup − baseline @ KL k': {"setup's gold", "baseline's gold", 'setup − baseline': mean_ci}} over the
    seeds (their `frontiers`) where both arms' frontiers reach k (n in each mean_ci)."""
    table: Dict[str, dict] = {}
    for setup, base in pairs:
        for k in at:
            values = {"setup": [], "baseline": [], "difference": []}
            for fronts in per_seed:
                a, b = gold_at(fronts.get(setup, []), k), gold_at(fronts.get(base, []), k)
                if a is None or b is None:
                    continue
                values["setup"].append(a)
                values["baseline"].append(b)
                values["difference"].append(a - b)
            if values["difference"]:
                table[f"{setup} − {base} @ KL {k:g}"] = {
                    "setup's gold": mean_ci(values["setup"]), "baseline's gold": mean_ci(values["baseline"]),
                    "setup − baseline": mean_ci(values["difference"])}
    return table


def kl_ranges(per_seed: Sequence[Frontiers]) -> Dict[str, Tuple[float, float]]:
    """{arm: (smallest, largest) top of its frontier over the seeds}: the KL each arm reached at its largest budget.
    A matched-KL value above an arm's smallest top is read on fewer seeds."""
    tops: Dict[str, List[float]] = {}
    for fronts in per_seed:
        for arm, points in fronts.items():
            tops.setdefault(arm, []).append(points[-1][0])
    return {arm: (min(v), max(v)) for arm, v in tops.items()}


def arms(per_seed: Sequence[Frontiers]) -> List[str]:
    return list(dict.fromkeys(arm for fronts in per_seed for arm in fronts))
