"""stage=compare: read a multirun directory (no network) and compare the setups across seeds.

Writes compare.md and compare.csv (mean and 95% interval over seeds per setup and metric), gold_vs_step.png (PPO
rollout gold against iteration, mean over seeds), gold_vs_kl.png (each run's held-out gold against its KL to
the SFT policy: the reward-KL frontier) and rm_reliability.png (each RM mode's held-out pairs pooled over runs).

Numbers built by different code are not one experiment: runs whose artifacts came from more than one code version
(`pairwise_rl.provenance`) are refused, or with compare.allow_mixed_code=true compared with the versions in the
table.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Dict, List

from omegaconf import DictConfig, OmegaConf

from pairwise_rl import provenance
from pairwise_rl.eval.aggregate import mean_ci
from pairwise_rl.eval.history import read_history, series
from pairwise_rl.eval.io import atomic_write_text, read_json
from pairwise_rl.eval.metrics import Reliability, pool_reliability
from pairwise_rl.eval.plots import plot_gold_vs_kl, plot_gold_vs_step, plot_reliability
from pairwise_rl.eval.report import print_table
from pairwise_rl.stages import STAGES

log = logging.getLogger(__name__)


class MixedCodeError(ValueError):
    """The runs of a comparison were built by different code."""


def load_results(directory: Path) -> List[dict]:
    """Every result.json below `directory`, each with `source`: the file it was read from."""
    results = [{**read_json(path), "source": str(path)} for path in sorted(Path(directory).glob("**/result.json"))]
    if not results:
        raise FileNotFoundError(f"compare.dir={directory}: no result.json below it (run stage=pipeline first)")
    return results


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
        raise MixedCodeError(f"compare.dir: these runs were built by {len(by_version)} code versions ({detail}). "
                             "Rerun the stale ones with paths.cache_policy=code, or set "
                             "compare.allow_mixed_code=true to compare them anyway (the table then names the versions)")
    return {setup: sorted(versions) for setup, versions in per_setup.items()}


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


def code_row(versions: Dict[str, List[str]], setups: List[str]) -> Dict[str, str]:
    """The 'code version' row of a table: one version per setup, or all of them ('MIXED: a + b')."""
    cells = {}
    for setup in setups:
        # The start row reads several setups' artifacts: it carries every version in the table.
        found = versions.get(setup) or sorted({v for vs in versions.values() for v in vs})
        cells[setup] = found[0] if len(found) == 1 else "MIXED: " + " + ".join(found)
    return cells


def write_tables(summary: Dict[str, Dict[str, dict]], seeds: List[int], out: Path,
                 versions: Dict[str, List[str]]) -> None:
    metrics = list(dict.fromkeys(m for setup in summary.values() for m in setup))
    setups = list(summary)
    every = sorted({v for vs in versions.values() for v in vs})
    lines = [f"Mean ± 95% t-interval over seeds {seeds} (n per cell in compare.csv); code version "
             f"{every[0] if len(every) == 1 else 'MIXED: ' + ', '.join(every)}.", "",
             "| metric | " + " | ".join(setups) + " |", "|---" * (len(setups) + 1) + "|"]
    for metric in metrics:
        lines.append(f"| {metric} | " + " | ".join(_cell(summary[s][metric]) if metric in summary[s] else "-"
                                                    for s in setups) + " |")
    if len(every) > 1:
        codes = code_row(versions, setups)
        lines.append("| code version | " + " | ".join(codes[s] for s in setups) + " |")
    atomic_write_text(out / "compare.md", "\n".join(lines) + "\n")
    rows = [{"setup": s, "metric": m, **stat} for s in setups for m, stat in summary[s].items()]
    with open(out / "compare.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["setup", "metric", "mean", "half_width", "n"])
        writer.writeheader()
        writer.writerows(rows)


def pooled_reliability(results: List[dict]) -> Dict[str, Reliability]:
    """Per RM mode, the reliability diagram over every run's held-out pairs (an RM shared by setups counts once)."""
    by_mode: Dict[str, Dict[str, Reliability]] = {}
    for result in results:
        for paths in result["artifacts"].values():
            rm_dir = Path(paths["rm"])
            mode = OmegaConf.load(rm_dir / "config.yaml").rm.mode  # the config the artifact was built with
            by_mode.setdefault(mode, {})[str(rm_dir)] = Reliability(**read_json(rm_dir / "reliability.json"))
    return {mode: pool_reliability(list(diagrams.values())) for mode, diagrams in by_mode.items()}


def write_plots(results: List[dict], directory: Path) -> List[Path]:
    """gold_vs_step.png, gold_vs_kl.png and rm_reliability.png for a set of pipeline results (one run or many)."""
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
    return [plot_gold_vs_step(curves, directory / "gold_vs_step.png"),
            plot_gold_vs_kl(frontier, directory / "gold_vs_kl.png", ylabel=f"held-out {quality}"),
            plot_reliability(pooled_reliability(results), directory / "rm_reliability.png",
                             title=f"RM reliability, held-out pairs pooled over {len(results)} run(s)")]


@STAGES.register("compare")
def compare_command(cfg: DictConfig) -> Dict[str, Dict[str, dict]]:
    directory = Path(cfg.compare.dir)
    results = load_results(directory)
    versions = check_code_versions(results, cfg.compare.allow_mixed_code)
    summary = summarise(results)
    seeds = sorted({r["seed"] for r in results})
    write_tables(summary, seeds, directory, versions)

    write_plots(results, directory)
    rows = {metric: {s: _cell(summary[s][metric]) for s in summary if metric in summary[s]}
            for metric in dict.fromkeys(m for s in summary.values() for m in s)}
    if len({v for vs in versions.values() for v in vs}) > 1:
        rows["code version"] = code_row(versions, list(summary))
        log.warning("compare.allow_mixed_code=true: this table mixes code versions (see its 'code version' row)")
    print_table(f"{len(results)} runs, seeds {seeds}: mean ± 95% interval", rows)
    log.info("wrote %s, %s and plots in %s", directory / "compare.md", directory / "compare.csv", directory)
    return summary
