"""The comparison's plots: gold against iteration and KL, RM reliability (pooled and by prompt kind), gold
against RM accuracy, and RM data scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from pairwise_rl.comparison.fits import gold_against_rm_accuracy
from pairwise_rl.comparison.load import START_ROW, artifact_order, distinct_rms, rm_label, rm_mode
from pairwise_rl.eval.aggregate import mean_ci
from pairwise_rl.eval.history import read_history, series
from pairwise_rl.files import read_json
from pairwise_rl.eval.metrics import GROUP_RELIABILITY, Reliability, pool_reliability
from pairwise_rl.eval.plots import (plot_gold_vs_kl, plot_gold_vs_rm_accuracy, plot_gold_vs_step,
                                    plot_quality_vs_judge_rows, plot_reliability, plot_reliability_by_group,
                                    plot_scaling)


def pooled_reliability(results: List[dict]) -> Dict[str, Reliability]:
    """Per RM mode, the reliability diagram over every run's held-out pairs (an RM shared by setups counts once)."""
    by_mode: Dict[str, Dict[str, Reliability]] = {}
    for result in results:
        for paths in result["artifacts"].values():
            if "rm" not in paths:  # a result that records no RM for a setup (hand-built, or before RMs were kept)
                continue
            rm_dir = Path(paths["rm"])
            mode = rm_mode(rm_dir)
            by_mode.setdefault(mode, {})[str(rm_dir)] = Reliability(**read_json(rm_dir / "reliability.json"))
    return {mode: pool_reliability(list(diagrams.values())) for mode, diagrams in by_mode.items()}


def reliability_by_group(results: List[dict]) -> Dict[str, Dict[str, Reliability]]:
    """{group: {setup: its RM's held-out diagram for that group, pooled over runs}} (digits: per prompt kind)."""
    found: Dict[str, Dict[str, List[Reliability]]] = {}
    for result in results:
        for setup, rm_dir in distinct_rms(result).items():
            path = Path(rm_dir) / GROUP_RELIABILITY
            for group, diagram in (read_json(path) if path.exists() else {}).items():
                found.setdefault(group, {}).setdefault(setup, []).append(Reliability(**diagram))
    return {group: {setup: pool_reliability(d) for setup, d in by_setup.items()} for group, by_setup in found.items()}


SCALING_PANELS = {  # panel of rm_scaling.png -> the result columns drawn in it (one line per RM mode and column)
    "RM accuracy on held-out pairs": ("RM accuracy", "RM gold accuracy"),
    "PPO held-out gold (sampled)": ("gold (sampled)",),
}


def scaling_curves(results: List[dict]) -> Dict[str, Dict[str, list]]:
    """rm_scaling.png's data: per panel and (RM mode and init, column), (pairs, mean, 95% half-width) over the runs at
    each RM training-set size. {} unless some RM mode was trained on more than one size."""
    values: Dict[tuple, List[float]] = {}
    for result in results:
        for setup, rm_dir in distinct_rms(result).items():
            row = result["results"][setup]
            if row.get("RM train pairs") is None:
                continue
            label = rm_label(rm_dir)
            for panel, columns in SCALING_PANELS.items():
                for column in columns:
                    if row.get(column) is not None:
                        key = (panel, f"{label}: {column}", int(row["RM train pairs"]))
                        values.setdefault(key, []).append(float(row[column]))
    sizes: Dict[str, set] = {}
    for _, line, pairs in values:
        sizes.setdefault(line, set()).add(pairs)
    if not any(len(s) > 1 for s in sizes.values()):
        return {}
    curves: Dict[str, Dict[str, list]] = {}
    for (panel, line, pairs), v in values.items():
        stat = mean_ci(v)
        curves.setdefault(panel, {}).setdefault(line, []).append((pairs, stat["mean"], stat["half_width"]))
    return curves


JUDGE_ROWS = "judge rows / iteration"  # the pipeline's column (stages/pipeline.py SUMMARY)


def quality_by_judge_cost(results: List[dict], quality: str) -> Dict[str, tuple]:
    """gold_vs_judge_rows.png's data: per setup with PPO (in the experiment's order), (judge rows per iteration,
    mean, 95% half-width over runs) of its quality minus the starting policy's in the same run (paired: a seed's
    SFT policy moves every setup of that seed alike). {} unless the setups read the judge at more than one cost."""
    found: Dict[str, tuple] = {}
    for result in results:
        start = result["results"].get(START_ROW, {}).get(quality)
        for setup in artifact_order(result):
            row = result["results"][setup]
            if row.get(JUDGE_ROWS) is not None and row.get(quality) is not None and start is not None:
                rows, values = found.get(setup, (row[JUDGE_ROWS], []))
                found[setup] = (rows, values + [float(row[quality]) - float(start)])
    if len({rows for rows, _ in found.values()}) < 2:
        return {}
    stats = {setup: (rows, mean_ci(values)) for setup, (rows, values) in found.items()}
    return {setup: (rows, stat["mean"], stat["half_width"]) for setup, (rows, stat) in stats.items()}


def write_plots(results: List[dict], directory: Path) -> List[Path]:
    """gold_vs_step.png, gold_vs_kl.png and rm_reliability.png for a set of pipeline results (one run or many);
    where the results have them, rm_reliability_by_kind.png (per prompt kind), gold_vs_rm_accuracy.png, for RMs
    trained on several data sizes rm_scaling.png, and for setups reading the judge at several costs
    gold_vs_judge_rows.png."""
    curves: Dict[str, List[List[tuple]]] = {}
    frontier: Dict[str, List[tuple]] = {}
    # Held-out quality on the frontier's y axis: gold where the task has it, else the independent judge's verdict.
    has_gold = any(r["results"][s].get("gold (sampled)") is not None for r in results for s in r["artifacts"])
    quality = "gold (sampled)" if has_gold else "judge: win vs reference"
    for result in results:
        for setup, paths in result["artifacts"].items():
            if "ppo" not in paths:  # an RM-only setup (last_stage: rm)
                continue
            curves.setdefault(setup, []).append(series(read_history(paths["ppo"]), "train/gold/mean"))
            metrics = result["results"][setup]
            if metrics.get(quality) is not None:
                frontier.setdefault(setup, []).append((metrics["KL to SFT"], metrics[quality]))
    directory = Path(directory)
    plots = [plot_gold_vs_step(curves, directory / "gold_vs_step.png"),
             plot_gold_vs_kl(frontier, directory / "gold_vs_kl.png", ylabel=f"held-out {quality}"),
             plot_reliability(pooled_reliability(results), directory / "rm_reliability.png",
                              title=f"RM reliability, held-out pairs pooled over {len(results)} run(s)")]
    by_group = reliability_by_group(results)
    if by_group:
        plots.append(plot_reliability_by_group(by_group, directory / "rm_reliability_by_kind.png",
                                               title=f"RM reliability per prompt kind, pooled over {len(results)} "
                                                     "run(s)"))
    column, against = gold_against_rm_accuracy(results)
    if against:
        plots.append(plot_gold_vs_rm_accuracy(against, directory / "gold_vs_rm_accuracy.png", xlabel=column))
    scaling = scaling_curves(results)
    if scaling:
        plots.append(plot_scaling(scaling, directory / "rm_scaling.png"))
    by_cost = quality_by_judge_cost(results, quality)
    if by_cost:
        plots.append(plot_quality_vs_judge_rows(by_cost, directory / "gold_vs_judge_rows.png",
                                                ylabel=f"held-out {quality} − start (paired per run)"))
    return plots
