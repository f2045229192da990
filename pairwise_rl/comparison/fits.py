"""PPO gold against RM accuracy over runs: each RM mode's line, and the gap between modes at a matched accuracy."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from pairwise_rl.comparison.load import distinct_rms, rm_mode
from pairwise_rl.comparison.tables import format_cell
from pairwise_rl.eval.aggregate import matched_offsets


def gold_against_rm_accuracy(results: List[dict]) -> Tuple[str, Dict[str, List[tuple]]]:
    """(x column, {RM mode: [(RM accuracy, PPO held-out gold), ...]}), one point per run and distinct RM. The x
    column is the RM's gold-ordering accuracy where every point has one, else its accuracy on the labels."""
    rows = [(rm_mode(rm_dir), result["results"][setup]) for result in results
            for setup, rm_dir in distinct_rms(result).items()]
    rows = [(mode, row) for mode, row in rows if row.get("gold (sampled)") is not None]
    column = "RM gold accuracy" if rows and all(r.get("RM gold accuracy") is not None for _, r in rows) \
        else "RM accuracy"
    points: Dict[str, List[tuple]] = {}
    for mode, row in rows:
        if row.get(column) is not None:
            points.setdefault(mode, []).append((row[column], row["gold (sampled)"]))
    return column, points


def rm_accuracy_fit(results: List[dict]) -> Optional[dict]:
    """PPO gold against RM accuracy over the distinct RMs, one slope for every RM mode (`matched_offsets`): each
    mode's policy gold against the first mode's at an equally accurate RM. None with too few RMs to fit."""
    column, points = gold_against_rm_accuracy(results)
    fit = matched_offsets(points)
    return {"x": column, "y": "gold (sampled)", **fit} if fit else None


def fit_note(fit: dict) -> str:
    offsets = "; ".join(f"{mode} − {fit['reference']} = {format_cell(stat)}" for mode, stat in fit["offsets"].items())
    r = "undefined" if fit["r"] is None else f"{fit['r']:.2f}"
    # with one RM mode there is no offset to state (the group_topologies runs: one generative judge per seed)
    between = f"; at the same {fit['x']}, {offsets}" if offsets else ""
    return (f"PPO {fit['y']} against {fit['x']}, one point per distinct RM (n = {fit['n']}): slope "
            f"{fit['slope']:.3f}, r = {r}{between} (least squares with one shared slope; the interval treats the RMs "
            "as independent, which a seed's shared SFT policy is not).")
