"""compare.md and compare.csv: the summary and paired tables, laid out by compare.layout."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from pairwise_rl.comparison.load import all_versions
from pairwise_rl.comparison.stats import Contrast
from pairwise_rl.files import atomic_write_text
from pairwise_rl.eval.report import orient, setups_as_rows


def format_cell(stat: dict) -> str:
    if stat["half_width"] == 0 and float(stat["mean"]).is_integer():
        return f"{stat['mean']:.0f}"  # a count that every seed shares (judge rows per iteration)
    if stat["n"] < 2:
        return f"{stat['mean']:.3f}"
    return f"{stat['mean']:.3f} ± {stat['half_width']:.3f}"


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
    cells = {setup: {m: format_cell(stats[m]) if m in stats else "-" for m in metrics}
             for setup, stats in summary.items()}
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


MATCHED_TITLE = ("Gold at matched KL: each arm's frontier (its runs over the KL budget, and the start at KL 0) read at "
                 "the same KL, paired within each seed; mean ± 95% t-interval over the seeds whose frontiers reach it")
MATCHED_COLUMNS = ("setup's gold", "baseline's gold", "setup − baseline")  # comparison/matched_kl.matched_kl


def write_tables(summary: Dict[str, Dict[str, dict]], seeds: List[int], out: Path, versions: Dict[str, List[str]],
                 metrics: List[str], layout: str, paired: Optional[Dict[Contrast, Dict[str, dict]]] = None,
                 baseline: Optional[str] = None, notes: Tuple[str, ...] = (),
                 matched: Optional[Dict[str, dict]] = None, sections: Tuple[List[str], ...] = ()) -> None:
    """compare.md (the chosen metrics; paired differences for a baseline or chosen pairs; gold at matched KL; then
    `notes`) and compare.csv (every metric; compare_paired.csv the paired differences, compare_matched_kl.csv the
    matched-KL rows). `sections`: more markdown (a tuning sweep's, tables_tuning.py), before the notes."""
    every = all_versions(versions)
    lines = [f"Mean ± 95% t-interval over seeds {seeds} (n per cell in compare.csv); code version "
             f"{every[0] if len(every) == 1 else 'MIXED: ' + ', '.join(every)}.", "",
             *markdown_table(table_cells(summary, metrics, versions), layout)]
    if paired:
        lines += ["", paired_title(baseline) + ":", "",
                  *markdown_table(table_cells(paired_rows(paired, baseline), metrics), layout)]
    if matched:
        lines += ["", MATCHED_TITLE + ":", "", *markdown_table(table_cells(matched, list(MATCHED_COLUMNS)),
                                                               "setups_as_rows")]
    lines += [line for section in sections for line in ("", *section)]
    lines += [line for note in notes for line in ("", note)]
    atomic_write_text(out / "compare.md", "\n".join(lines) + "\n")
    write_csv(out / "compare.csv", [({"setup": s}, summary[s]) for s in summary])
    if matched:
        write_csv(out / "compare_matched_kl.csv", [({"contrast": name}, stats) for name, stats in matched.items()])
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


TUNING_TITLE = ("Tuning: each arm's trial selected on validation data only (the sweep's tune.select.metric, mean over "
                "seeds), then its test numbers (mean ± 95% t-interval over seeds) beside the untuned trial's and the "
                "range of means over all the arm's trials")
TUNING_PAIRED_TITLE = ("Tuned (selected trials) and untuned (defaults) arms, paired within each seed: mean ± 95% "
                       "t-interval over seeds")


def plain_cell(value: object) -> str:
    if isinstance(value, dict):
        return format_cell(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def tuning_section(rows: Dict[str, Dict[str, object]], paired: Dict[str, Dict[str, dict]], metrics: List[str],
                   picks: str) -> List[str]:
    """compare.md's tuning section: the per-arm selection table, the paired tuned / untuned differences, and the
    overrides that rerun the selected trials."""
    cells = {arm: {column: plain_cell(value) for column, value in row.items()} for arm, row in rows.items()}
    lines = [TUNING_TITLE + ":", "", *markdown_table(cells, "setups_as_columns")]
    if paired:
        lines += ["", TUNING_PAIRED_TITLE + ":", "", *markdown_table(table_cells(paired, metrics), "setups_as_rows")]
    return lines + ["", f"Rerun the selected trials (e.g. on more seeds): `{picks}`."]


def write_tuning_files(out: Path, trial_rows: List[Dict[str, object]], selected: Dict[str, dict]) -> None:
    """compare_tuning_trials.csv (every trial of every arm) and tuning_selected.json (each arm's choice)."""
    columns = list(dict.fromkeys(c for row in trial_rows for c in row))
    with open(out / "compare_tuning_trials.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(trial_rows)
    atomic_write_text(out / "tuning_selected.json", json.dumps(selected, indent=2, sort_keys=True) + "\n")
