"""Across seeds: each setup's mean with a 95% interval per metric, and paired differences between setups."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from pairwise_rl.checks import ConfigError
from pairwise_rl.comparison.load import START_ROW
from pairwise_rl.eval.aggregate import mean_ci


def setup_order(results: List[dict]) -> List[str]:
    """Setups in the order the experiment lists them (the start row first), then any others alphabetically."""
    listed: List[str] = []
    for result in results:
        names = result.get("setups") or [START_ROW, *(s["name"] for s in
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
        raise ConfigError(f"compare.metrics: {missing} not in these results; they have: {seen}")
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
            raise ConfigError(f"compare.baseline={baseline!r}: no run has that setup; they have {every}")
        return [(setup, baseline) for setup in every if setup != baseline]
    for setup, base in pairs:
        for name in (setup, base):
            if name not in every:
                raise ConfigError(f"compare.pairs: no run has the setup {name!r}; they have {every}")
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
