"""stage=compare: read a multirun directory (no network) and compare the setups across seeds; the work is in
pairwise_rl/comparison/ (load, stats, tables, fits, figures), and what it writes is described there."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict

from omegaconf import DictConfig

from pairwise_rl import hardware
from pairwise_rl.checks import ConfigError
from pairwise_rl.comparison.figures import write_plots
from pairwise_rl.comparison.fits import fit_note, rm_accuracy_fit
from pairwise_rl.comparison.load import all_versions, check_code_versions, load_results
from pairwise_rl.comparison.matched_kl import arms, frontiers, kl_ranges, matched_kl
from pairwise_rl.comparison.stats import contrasts, metric_order, paired_differences, summarise
from pairwise_rl.comparison.tables import (MATCHED_COLUMNS, MATCHED_TITLE, TUNING_PAIRED_TITLE, TUNING_TITLE,
                                           paired_rows, paired_title, plain_cell, table_cells, tuning_section,
                                           write_tables, write_tuning_files)
from pairwise_rl.comparison.tuning import pick_overrides, select_arms, summary_rows, trial_table
from pairwise_rl.comparison.tuning import paired as tuning_paired
from pairwise_rl.eval.plots import plot_frontiers
from pairwise_rl.eval.report import orient, print_table
from pairwise_rl.files import atomic_write_text
from pairwise_rl.stages.registry import STAGES

log = logging.getLogger(__name__)


def machine_note(results) -> str:
    """Which CPU type(s) the runs computed on; more than one is warned about: float rounding and speed differ
    between types, so their numbers (and seconds) are not bit-comparable."""
    types = hardware.differing_types([r.get("machine") for r in results])
    if len(types) > 1:
        log.warning("these runs computed on %d CPU types (%s): their numbers differ by float rounding and their "
                    "seconds are not comparable", len(types), "; ".join(types))
        return "Machines: " + "; ".join(types) + " (mixed CPU types: numbers differ by float rounding)."
    return f"Machine: {types[0]}." if types else "Machine: not recorded (runs from before it was)."


@STAGES.register("compare")
def compare_command(cfg: DictConfig) -> Dict[str, Dict[str, dict]]:
    """Read a multirun directory's results: tables with 95% intervals, paired differences, plots."""
    directory = Path(cfg.compare.dir)
    results = load_results(directory)
    versions = check_code_versions(results, cfg.compare.allow_mixed_code)
    summary = summarise(results)
    metrics = metric_order(results, list(cfg.compare.metrics))
    baseline = cfg.compare.baseline
    selections = select_arms(results)
    # a tuning sweep's setups are its trials ('traditional [tune.trial=3]'): baseline and pairs name arms there
    pairs = [] if selections else contrasts(results, baseline, [list(pair) for pair in cfg.compare.pairs])
    paired = paired_differences(results, pairs) if pairs else None
    seeds = sorted({r["seed"] for r in results})
    fit = rm_accuracy_fit(results)
    if fit:
        atomic_write_text(directory / "gold_vs_rm_accuracy.json", json.dumps(fit, indent=2) + "\n")
        log.info(fit_note(fit))
    machines = machine_note(results)
    at_matched_kl = matched_kl_table(cfg, results)
    tuning = tuning_report(cfg, selections, metrics, directory) if selections else None
    write_tables(summary, seeds, directory, versions, metrics, cfg.compare.layout, paired, baseline,
                 notes=((fit_note(fit),) if fit else ()) + (machines,), matched=at_matched_kl,
                 sections=(tuning[0],) if tuning else ())

    write_plots(results, directory)
    if len(all_versions(versions)) > 1:
        log.warning("compare.allow_mixed_code=true: this table mixes code versions (see its 'code version' row)")
    print_table(f"{len(results)} seeds {seeds}: mean ± 95% interval",
                orient(table_cells(summary, metrics, versions), cfg.compare.layout))
    if paired:
        print_table(paired_title(baseline), orient(table_cells(paired_rows(paired, baseline), metrics),
                                                   cfg.compare.layout))
    if at_matched_kl:
        print_table(MATCHED_TITLE, orient(table_cells(at_matched_kl, list(MATCHED_COLUMNS)), "setups_as_rows"))
    if tuning:
        _, rows, paired_tuned, shown, picks = tuning
        print_table(TUNING_TITLE, orient({arm: {c: plain_cell(v) for c, v in row.items()} for arm, row in rows.items()},
                                         "setups_as_columns"))
        if paired_tuned:
            print_table(TUNING_PAIRED_TITLE, orient(table_cells(paired_tuned, shown), "setups_as_rows"))
        log.info("rerun the selected trials: pairwise-rl -m experiment=%s %s seed=...", cfg.experiment_name, picks)
    log.info("wrote %s, %s and plots in %s", directory / "compare.md", directory / "compare.csv", directory)
    return summary


def matched_kl_table(cfg: DictConfig, results) -> Dict[str, dict]:
    """compare.matched_kl: each pair of arms' gold at the chosen KLs, paired within seeds ({} when not asked)."""
    at = list(cfg.compare.matched_kl.at)
    if not at:
        return {}
    per_seed = [frontiers(result) for result in results]
    known = arms(per_seed)
    pairs = [tuple(p) for p in cfg.compare.matched_kl.pairs] or [tuple(p) for p in cfg.compare.pairs] or [
        (arm, cfg.compare.baseline) for arm in known if arm != cfg.compare.baseline]
    for setup, base in pairs:
        for name in (setup, base):
            if name not in known:
                raise ConfigError(f"compare.matched_kl.pairs: no arm {name!r} in these runs; they have {known} "
                                  "(arms are setup names before a sweep's [label])")
    for arm, (low, high) in kl_ranges(per_seed).items():
        log.info("matched KL: %s reached KL %.3f-%.3f at its largest budget (over seeds)", arm, low, high)
    plot_frontiers({arm: [fronts[arm] for fronts in per_seed if arm in fronts] for arm in known}, at,
                   Path(cfg.compare.dir) / "matched_kl.png")
    table = matched_kl(per_seed, pairs, at)
    if not table:
        log.warning("compare.matched_kl.at=%s: no seed has both arms' frontiers reaching these KLs", at)
    return table


TUNING_METRICS = ("gold (sampled)", "KL to SFT", "RM gold accuracy", "RM accuracy", "RM ECE")  # when compare.metrics
# names none: the test numbers a tuned comparison is about


def tuning_report(cfg: DictConfig, selections, metrics, directory: Path):
    """A tuning sweep's section of compare.md, its files, and what the printed tables need."""
    shown = [m for m in (cfg.compare.metrics or TUNING_METRICS) if m in metrics and not m.startswith("val ")]
    arms = list(selections)
    pairs = ([tuple(p) for p in cfg.compare.pairs] or
             [(arm, cfg.compare.baseline) for arm in arms if cfg.compare.baseline and arm != cfg.compare.baseline])
    for setup, base in pairs:
        for name in (setup, base):
            if name not in selections:
                raise ConfigError(f"compare.pairs: no tuned arm {name!r} in this tuning sweep; it has {arms}")
    rows = summary_rows(selections, shown)
    paired_tuned = tuning_paired(selections, pairs, shown)
    picks = pick_overrides(selections)
    write_tuning_files(directory, trial_table(selections, shown),
                       {arm: {"trial": s.selected, "point": s.best.point, "metric": s.metric,
                              "validation": s.best.mean(s.metric), "budget": s.budget}
                        for arm, s in selections.items()})
    for arm, s in selections.items():
        log.info("tuning: %s selected trial %d of %d on %s = %.4f", arm, s.selected, s.budget, s.metric,
                 s.best.mean(s.metric))
    return tuning_section(rows, paired_tuned, shown, picks), rows, paired_tuned, shown, picks
