"""stage=compare: read a multirun directory (no network) and compare the setups across seeds.

Writes compare.md and compare.csv (mean and 95% interval over seeds per setup and metric), gold_vs_step.png (PPO
rollout gold against iteration, mean over seeds), gold_vs_kl.png (each run's held-out gold against its KL to
the SFT policy: the reward-KL frontier) and rm_reliability.png (each RM mode's held-out pairs pooled over runs);
where the runs have them, rm_reliability_by_kind.png (each RM's diagram per prompt kind), gold_vs_rm_accuracy.png
(each run's PPO gold against its RM's accuracy; gold_vs_rm_accuracy.json and a compare.md line give each RM
mode's gold at a matched RM accuracy) and rm_scaling.png (RM accuracy and PPO gold against
the RM's training pairs, for RMs trained on several sizes: experiments/rm_scaling.yaml).

Each (setup, seed) is one observation (`eval.runs`): a seed split over several jobs is merged, and a setup swept
over another key is split into one column per value.

Numbers built by different code are not one experiment: runs whose artifacts came from more than one code version
(`pairwise_rl.provenance`) are refused, or with compare.allow_mixed_code=true compared with the versions in the
table.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf

from pairwise_rl import provenance
from pairwise_rl.errors import DataSourceError, UserError
from pairwise_rl.eval.aggregate import matched_offsets, mean_ci
from pairwise_rl.eval.history import read_history, series
from pairwise_rl.eval.io import atomic_write_text, read_json
from pairwise_rl.eval.metrics import Reliability, pool_reliability
from pairwise_rl.eval.plots import (plot_gold_vs_kl, plot_gold_vs_rm_accuracy, plot_gold_vs_step, plot_reliability,
                                    plot_reliability_by_group, plot_scaling)
from pairwise_rl.eval.report import orient, print_table, setups_as_rows
from pairwise_rl.eval.runs import by_seed
from pairwise_rl.stages.registry import STAGES
from pairwise_rl.stages.rm import GROUP_RELIABILITY

log = logging.getLogger(__name__)


class MixedCodeError(UserError, ValueError):
    """The runs of a comparison were built by different code."""

    fix = ("rerun the stale runs with paths.cache_policy=code, or set compare.allow_mixed_code=true to compare them "
           "anyway (the table then names the versions)")


def load_results(directory: Path) -> List[dict]:
    """One run per seed from every result.json below `directory` (`eval.runs.by_seed`: a seed's jobs merged, a
    setup swept over other keys split by them), each with `source`: the file(s) it was read from."""
    results = [{**read_json(path), "source": str(path)} for path in sorted(Path(directory).glob("**/result.json"))]
    if not results:
        raise DataSourceError(f"compare.dir={directory}: no result.json below it").with_fix(
            "point compare.dir at a multirun directory of stage=pipeline runs (pairwise-rl -m ... seed=0,1,2)")
    return by_seed(results)


def code_versions(result: dict) -> Dict[str, Dict[str, str]]:
    """{setup: {stage: code version}} of one run's artifacts (read from the artifacts for runs that predate it)."""
    if "code_versions" in result:
        return result["code_versions"]
    return {setup: {stage: provenance.code_version(read_json(Path(p) / "COMPLETE.json").get("built_by"))
                    if (Path(p) / "COMPLETE.json").exists() else provenance.UNKNOWN for stage, p in paths.items()}
            for setup, paths in result["artifacts"].items()}


def check_code_versions(results: List[dict], allow_mixed: bool) -> Dict[str, List[str]]:
    """{setup: the code versions its runs' artifacts came from}; refuses more than one overall unless allowed."""
    by_version: Dict[str, List[str]] = {}
    per_setup: Dict[str, set] = {}
    for result in results:
        for setup, stages in code_versions(result).items():
            per_setup.setdefault(setup, set()).update(stages.values())
            for stage, version in stages.items():
                by_version.setdefault(version, []).append(f"{result['source']} ({setup}: {stage})")
    if len(by_version) > 1 and not allow_mixed:
        detail = "; ".join(f"code {version}: {len(where)} artifacts, e.g. {where[0]}"
                           for version, where in sorted(by_version.items()))
        raise MixedCodeError(f"compare.dir: these runs were built by {len(by_version)} code versions ({detail})")
    return {setup: sorted(versions) for setup, versions in per_setup.items()}


def setup_order(results: List[dict]) -> List[str]:
    """Setups in the order the experiment lists them (the start row first), then any others alphabetically."""
    listed: List[str] = []
    for result in results:
        names = result.get("setups") or ["sft (start)", *(s["name"] for s in
                                                          result.get("config", {}).get("pipeline", {}).get("setups", []))]
        listed.extend(names)
    every = {setup for result in results for setup in result["results"]}
    listed = [s for s in dict.fromkeys(listed) if s in every]
    return listed + sorted(every - set(listed), key=lambda setup: (not setup.startswith("sft"), setup))


def metric_order(results: List[dict], chosen: List[str]) -> List[str]:
    """compare.metrics when given (each must exist), else the pipeline's column order, else first seen."""
    seen = list(dict.fromkeys([*(c for r in results for c in r.get("columns", [])),
                               *(m for r in results for row in r["results"].values() for m in row)]))
    missing = [m for m in chosen if m not in seen]
    if missing:
        raise KeyError(f"compare.metrics: {missing} not in these results; they have: {seen}")
    return list(chosen) or seen


def summarise(results: List[dict]) -> Dict[str, Dict[str, dict]]:
    """{setup: {metric: mean_ci over the runs (seeds) that have it}}, setups in the experiment's order."""
    values: Dict[str, Dict[str, List[float]]] = {}
    for result in results:
        for setup, metrics in result["results"].items():
            for metric, value in metrics.items():
                if value is not None:
                    values.setdefault(setup, {}).setdefault(metric, []).append(float(value))
    return intervals(values, results)


def intervals(values: Dict[str, Dict[str, List[float]]], results: List[dict]) -> Dict[str, Dict[str, dict]]:
    """{setup: {metric: per-seed values}} -> {setup: {metric: mean_ci}}, setups in the experiment's order."""
    return {setup: {metric: mean_ci(v) for metric, v in values[setup].items()}
            for setup in setup_order(results) if setup in values}


Contrast = Tuple[str, str]  # (setup, baseline)


def contrasts(results: List[dict], baseline: Optional[str], pairs: List[List[str]]) -> List[Contrast]:
    """(setup, baseline) pairs: every other setup against compare.baseline, or compare.pairs as given."""
    every = setup_order(results)
    if baseline:
        if not any(baseline in r["results"] for r in results):
            raise KeyError(f"compare.baseline={baseline!r}: no run has that setup; they have {every}")
        return [(setup, baseline) for setup in every if setup != baseline]
    for setup, base in pairs:
        for name in (setup, base):
            if name not in every:
                raise KeyError(f"compare.pairs: no run has the setup {name!r}; they have {every}")
    return [(setup, base) for setup, base in pairs]


def paired_differences(results: List[dict], pairs: List[Contrast]) -> Dict[Contrast, Dict[str, dict]]:
    """{(setup, baseline): {metric: mean_ci over seeds of (setup - baseline) within each run}}: the seeds' shared
    SFT policy (and RMs where shared) cancel, so the interval is far narrower than the difference of two unpaired
    intervals."""
    values: Dict[Contrast, Dict[str, List[float]]] = {}
    for result in results:
        rows = result["results"]
        for setup, base in pairs:
            if setup not in rows or base not in rows:
                continue
            for metric, value in rows[setup].items():
                if value is not None and rows[base].get(metric) is not None:
                    values.setdefault((setup, base), {}).setdefault(metric, []).append(
                        float(value) - float(rows[base][metric]))
    return {name: {metric: mean_ci(v) for metric, v in by_metric.items()} for name, by_metric in values.items()}


def _cell(stat: dict) -> str:
    if stat["half_width"] == 0 and float(stat["mean"]).is_integer():
        return f"{stat['mean']:.0f}"  # a count that every seed shares (judge rows per iteration)
    if stat["n"] < 2:
        return f"{stat['mean']:.3f}"
    return f"{stat['mean']:.3f} ± {stat['half_width']:.3f}"


def all_versions(versions: Dict[str, List[str]]) -> List[str]:
    """Every code version the compared artifacts came from (more than one only with compare.allow_mixed_code)."""
    return sorted({v for vs in versions.values() for v in vs})


def code_row(versions: Dict[str, List[str]], setups: List[str]) -> Dict[str, str]:
    """The 'code version' row of a table: one version per setup, or all of them ('MIXED: a + b')."""
    cells = {}
    for setup in setups:
        # The start row reads several setups' artifacts: it carries every version in the table.
        found = versions.get(setup) or all_versions(versions)
        cells[setup] = found[0] if len(found) == 1 else "MIXED: " + " + ".join(found)
    return cells


def table_cells(summary: Dict[str, Dict[str, dict]], metrics: List[str],
                versions: Optional[Dict[str, List[str]]] = None) -> Dict[str, Dict[str, str]]:
    """{setup: {metric: 'mean ± half-width'}} for the chosen metrics, plus a 'code version' cell per setup when
    `versions` holds more than one version (compare.allow_mixed_code)."""
    cells = {setup: {m: _cell(stats[m]) if m in stats else "-" for m in metrics} for setup, stats in summary.items()}
    if versions and len(all_versions(versions)) > 1:
        for setup, cell in code_row(versions, list(summary)).items():
            cells[setup]["code version"] = cell
    return cells


def markdown_table(cells: Dict[str, Dict[str, str]], layout: str) -> List[str]:
    """Markdown lines of a {setup: {metric: cell}} table, oriented by `layout` (eval.report.orient)."""
    table = orient(cells, layout)
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    corner = "setup" if setups_as_rows(len(cells), layout) else "metric"
    lines = ["| " + " | ".join([corner, *columns]) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += ["| " + " | ".join([name, *(str(row.get(c, "-")) for c in columns)]) + " |" for name, row in table.items()]
    return lines


def paired_title(baseline: Optional[str]) -> str:
    setup = f"setup − {baseline}" if baseline else "setup − baseline"
    return f"Paired difference, {setup}, within each seed's run, then mean ± 95% t-interval over seeds"


def paired_rows(paired: Dict[Contrast, Dict[str, dict]], baseline: Optional[str]) -> Dict[str, Dict[str, dict]]:
    """Table rows of the paired differences: named by the setup against one baseline, 'setup − baseline' else."""
    return {(setup if baseline else f"{setup} − {base}"): stats for (setup, base), stats in paired.items()}


def write_tables(summary: Dict[str, Dict[str, dict]], seeds: List[int], out: Path, versions: Dict[str, List[str]],
                 metrics: List[str], layout: str, paired: Optional[Dict[Contrast, Dict[str, dict]]] = None,
                 baseline: Optional[str] = None, notes: Tuple[str, ...] = ()) -> None:
    """compare.md (the chosen metrics; paired differences for a baseline or chosen pairs; then `notes`) and
    compare.csv (every metric; compare_paired.csv the paired differences)."""
    every = all_versions(versions)
    lines = [f"Mean ± 95% t-interval over seeds {seeds} (n per cell in compare.csv); code version "
             f"{every[0] if len(every) == 1 else 'MIXED: ' + ', '.join(every)}.", "",
             *markdown_table(table_cells(summary, metrics, versions), layout)]
    if paired:
        lines += ["", paired_title(baseline) + ":", "",
                  *markdown_table(table_cells(paired_rows(paired, baseline), metrics), layout)]
    lines += [line for note in notes for line in ("", note)]
    atomic_write_text(out / "compare.md", "\n".join(lines) + "\n")
    write_csv(out / "compare.csv", [({"setup": s}, summary[s]) for s in summary])
    if paired:
        write_csv(out / "compare_paired.csv", [({"baseline": base, "setup": setup}, stats)
                                               for (setup, base), stats in paired.items()])


def write_csv(path: Path, groups: List[Tuple[Dict[str, str], Dict[str, dict]]]) -> None:
    """One row per (setup, metric) with its mean, half-width and n; each group's key columns come first."""
    keys = list(groups[0][0]) if groups else ["setup"]
    rows = [{**key, "metric": m, **stat} for key, stats in groups for m, stat in stats.items()]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*keys, "metric", "mean", "half_width", "n"])
        writer.writeheader()
        writer.writerows(rows)


def pooled_reliability(results: List[dict]) -> Dict[str, Reliability]:
    """Per RM mode, the reliability diagram over every run's held-out pairs (an RM shared by setups counts once)."""
    by_mode: Dict[str, Dict[str, Reliability]] = {}
    for result in results:
        for paths in result["artifacts"].values():
            rm_dir = Path(paths["rm"])
            mode = rm_mode(rm_dir)
            by_mode.setdefault(mode, {})[str(rm_dir)] = Reliability(**read_json(rm_dir / "reliability.json"))
    return {mode: pool_reliability(list(diagrams.values())) for mode, diagrams in by_mode.items()}


@functools.lru_cache(maxsize=None)  # artifacts are content-addressed and never rewritten: read each config once
def rm_mode(rm_dir: str) -> str:
    return OmegaConf.load(Path(rm_dir) / "config.yaml").rm.mode  # the config the artifact was built with


def distinct_rms(result: dict) -> Dict[str, str]:
    """{setup: RM dir} for the first setup (in the experiment's order) of each distinct RM in one run: setups that
    share an RM count once."""
    seen: Dict[str, str] = {}
    artifacts = result["artifacts"]  # result.json sorts its keys; `setups` keeps the experiment's order
    for setup in [s for s in result.get("setups", []) if s in artifacts] + sorted(artifacts):
        rm_dir = artifacts[setup].get("rm")
        if rm_dir is not None and rm_dir not in seen.values():
            seen[setup] = rm_dir
    return seen


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
    """rm_scaling.png's data: per panel and (RM mode, column), (pairs, mean, 95% half-width) over the runs at each
    RM training-set size. {} unless some RM mode was trained on more than one size."""
    values: Dict[tuple, List[float]] = {}
    for result in results:
        for setup, rm_dir in distinct_rms(result).items():
            row = result["results"][setup]
            if row.get("RM train pairs") is None:
                continue
            mode = rm_mode(rm_dir)
            for panel, columns in SCALING_PANELS.items():
                for column in columns:
                    if row.get(column) is not None:
                        key = (panel, f"{mode}: {column}", int(row["RM train pairs"]))
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
    offsets = "; ".join(f"{mode} − {fit['reference']} = {_cell(stat)}" for mode, stat in fit["offsets"].items())
    r = "undefined" if fit["r"] is None else f"{fit['r']:.2f}"
    return (f"PPO {fit['y']} against {fit['x']}, one point per distinct RM (n = {fit['n']}): slope "
            f"{fit['slope']:.3f}, r = {r}; at the same {fit['x']}, {offsets} (least squares with one shared slope; "
            "the interval treats the RMs as independent, which a seed's shared SFT policy is not).")


def write_plots(results: List[dict], directory: Path) -> List[Path]:
    """gold_vs_step.png, gold_vs_kl.png and rm_reliability.png for a set of pipeline results (one run or many);
    where the results have them, rm_reliability_by_kind.png (per prompt kind), gold_vs_rm_accuracy.png and, for RMs
    trained on several data sizes, rm_scaling.png."""
    curves: Dict[str, List[List[tuple]]] = {}
    frontier: Dict[str, List[tuple]] = {}
    # Held-out quality on the frontier's y axis: gold where the task has it, else the independent judge's verdict.
    has_gold = any(r["results"][s].get("gold (sampled)") is not None for r in results for s in r["artifacts"])
    quality = "gold (sampled)" if has_gold else "judge: win vs reference"
    for result in results:
        for setup, paths in result["artifacts"].items():
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
    return plots


@STAGES.register("compare")
def compare_command(cfg: DictConfig) -> Dict[str, Dict[str, dict]]:
    """Read a multirun directory's results: tables with 95% intervals, paired differences, plots."""
    directory = Path(cfg.compare.dir)
    results = load_results(directory)
    versions = check_code_versions(results, cfg.compare.allow_mixed_code)
    summary = summarise(results)
    metrics = metric_order(results, list(cfg.compare.metrics))
    baseline = cfg.compare.baseline
    pairs = contrasts(results, baseline, [list(pair) for pair in cfg.compare.pairs])
    paired = paired_differences(results, pairs) if pairs else None
    seeds = sorted({r["seed"] for r in results})
    fit = rm_accuracy_fit(results)
    if fit:
        atomic_write_text(directory / "gold_vs_rm_accuracy.json", json.dumps(fit, indent=2) + "\n")
        log.info(fit_note(fit))
    write_tables(summary, seeds, directory, versions, metrics, cfg.compare.layout, paired, baseline,
                 notes=(fit_note(fit),) if fit else ())

    write_plots(results, directory)
    if len(all_versions(versions)) > 1:
        log.warning("compare.allow_mixed_code=true: this table mixes code versions (see its 'code version' row)")
    print_table(f"{len(results)} seeds {seeds}: mean ± 95% interval",
                orient(table_cells(summary, metrics, versions), cfg.compare.layout))
    if paired:
        print_table(paired_title(baseline), orient(table_cells(paired_rows(paired, baseline), metrics),
                                                   cfg.compare.layout))
    log.info("wrote %s, %s and plots in %s", directory / "compare.md", directory / "compare.csv", directory)
    return summary
