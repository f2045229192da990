"""One observation per seed: the jobs of a multirun directory as stage=compare must count them.

Across-seed intervals assume one value per (setup, seed). A multirun breaks that two ways, and both used to pass
silently: a seed split over several jobs (each with some of the setups, every one with the `sft (start)` row)
counted the shared rows once per job, and a sweep over anything but the seed (`ppo.kl.target=0.1,0.3,1.0`) put
three different configurations under one setup name, so their spread read as seed noise.

`by_seed` merges each seed's jobs into one run. A setup whose rows in one seed are the same cell (same artifacts,
or for the start row the same numbers) counts once; one whose rows differ is renamed in every job by the overrides
that tell its jobs apart (`traditional [ppo.kl.target=0.1]`), so each configuration gets its own column.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

from omegaconf import OmegaConf

SEED_KEY = "seed"


def cell_identity(result: dict, setup: str) -> str:
    """What makes two rows of a setup the same cell: its artifacts (content-addressed), else its numbers."""
    return json.dumps(result.get("artifacts", {}).get(setup) or result["results"][setup], sort_keys=True)


def job_overrides(result: dict) -> Dict[str, str]:
    """{key: value} of the Hydra command-line overrides of the job that wrote the result (.hydra/overrides.yaml
    beside result.json), the seed left out; {} where the job has none on record."""
    path = Path(result["source"]).parent / ".hydra" / "overrides.yaml"
    overrides = OmegaConf.to_container(OmegaConf.load(path)) if path.exists() else None
    pairs = (str(o).lstrip("+~").split("=", 1) for o in overrides or [])
    return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs if pair[0] != SEED_KEY}


def distinguishing_label(results: List[dict]) -> Dict[str, str]:
    """{source: ' [key=value, ...]'}: the overrides whose values differ among these jobs; the job's directory
    where no override tells them apart."""
    overrides = {r["source"]: job_overrides(r) for r in results}
    keys = sorted({k for o in overrides.values() for k in o})
    varying = [k for k in keys if len({o.get(k) for o in overrides.values()}) > 1]
    if varying:
        return {source: " [" + ", ".join(f"{k}={o.get(k, '(unset)')}" for k in varying) + "]"
                for source, o in overrides.items()}
    return {source: f" [{Path(source).parent.name}]" for source in overrides}


def ambiguous_setups(results: List[dict]) -> List[str]:
    """Setups that some seed has as two different cells (different artifacts or numbers) in two jobs."""
    seen: Dict[tuple, str] = {}
    ambiguous = set()
    for result in results:
        for setup in result["results"]:
            key = (result["seed"], setup)
            identity = cell_identity(result, setup)
            if seen.setdefault(key, identity) != identity:
                ambiguous.add(setup)
    return sorted(ambiguous)


def rename_setup(result: dict, old: str, new: str) -> None:
    for field in ("results", "artifacts", "code_versions"):
        if old in result.get(field, {}):
            result[field][new] = result[field].pop(old)
    result["setups"] = [new if s == old else s for s in result.get("setups", [])]


def disambiguate(results: List[dict]) -> List[dict]:
    """Copies of the results with every ambiguous setup renamed by what tells its jobs apart, the same way in every
    seed, so a sweep's configurations line up across seeds."""
    results = [{**r, **{f: dict(r.get(f, {})) for f in ("results", "artifacts", "code_versions")},
                "setups": list(r.get("setups", []))} for r in results]
    for setup in ambiguous_setups(results):
        holders = [r for r in results if setup in r["results"]]
        labels = distinguishing_label(holders)
        for result in holders:
            rename_setup(result, setup, setup + labels[result["source"]])
    return results


def merge(runs: List[dict]) -> dict:
    """One seed's jobs as one run: the union of their setups; a setup in several jobs must be one cell."""
    merged = {**runs[0], "results": {}, "artifacts": {}, "code_versions": {}, "setups": [], "columns": [],
              "source": "; ".join(r["source"] for r in runs)}
    where: Dict[str, str] = {}
    for run in runs:
        for setup in run["results"]:
            identity = cell_identity(run, setup)
            if setup in where and where[setup] != identity:
                raise ValueError(f"compare.dir: seed {run['seed']} has two different cells named {setup!r} "
                                 f"({merged['source']}) and no override tells their jobs apart; give the setups "
                                 "distinct names or compare the jobs in separate directories")
            where[setup] = identity
            merged["results"][setup] = run["results"][setup]
        for field in ("artifacts", "code_versions"):
            merged[field].update(run.get(field, {}))
        merged["setups"] += [s for s in run.get("setups", []) if s not in merged["setups"]]
        merged["columns"] += [c for c in run.get("columns", []) if c not in merged["columns"]]
    return merged


def by_seed(results: List[dict]) -> List[dict]:
    """One run per seed (seeds in order): ambiguous setups renamed apart, then each seed's jobs merged."""
    grouped: Dict[int, List[dict]] = {}
    for result in disambiguate(results):
        grouped.setdefault(result["seed"], []).append(result)
    return [merge(grouped[seed]) for seed in sorted(grouped)]
