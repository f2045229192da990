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
from typing import Dict, List, Tuple

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


def clashes(results: List[dict]) -> List[Tuple[int, str]]:
    """(seed, setup) where that seed has the setup as two different cells (different artifacts or numbers)."""
    seen: Dict[tuple, str] = {}
    found = set()
    for result in results:
        for setup in result["results"]:
            key = (result["seed"], setup)
            if seen.setdefault(key, cell_identity(result, setup)) != cell_identity(result, setup):
                found.add(key)
    return sorted(found)


# A result's fields keyed by setup name: what renaming a setup renames, and what merging a seed's jobs unites.
KEYED_BY_SETUP = ("results", "artifacts", "code_versions", "tuning")


def rename_setup(result: dict, old: str, new: str) -> None:
    for field in KEYED_BY_SETUP:
        if old in result.get(field, {}):
            result[field][new] = result[field].pop(old)
    result["setups"] = [new if s == old else s for s in result.get("setups", [])]


def disambiguate(results: List[dict]) -> List[dict]:
    """Copies of the results with every ambiguous setup renamed by what tells its jobs apart, the same way in every
    seed, so a sweep's configurations line up across seeds. A clash that no label resolves is refused."""
    results = [{**r, **{f: dict(r.get(f, {})) for f in KEYED_BY_SETUP}, "setups": list(r.get("setups", []))}
               for r in results]
    for setup in sorted({setup for _, setup in clashes(results)}):
        holders = [r for r in results if setup in r["results"]]
        labels = distinguishing_label(holders)
        for result in holders:
            rename_setup(result, setup, setup + labels[result["source"]])
    for seed, setup in clashes(results)[:1]:
        sources = "; ".join(r["source"] for r in results if r["seed"] == seed and setup in r["results"])
        raise ValueError(f"compare.dir: seed {seed} has two different cells named {setup!r} ({sources}) and no "
                         "override tells their jobs apart; give the setups distinct names or compare the jobs in "
                         "separate directories")
    return results


def merge(runs: List[dict]) -> dict:
    """One seed's jobs as one run: the union of their setups (a setup in several jobs is one cell by now)."""
    merged = {**runs[0], **{f: {} for f in KEYED_BY_SETUP}, "setups": [], "columns": [],
              "source": "; ".join(r["source"] for r in runs)}
    for run in runs:
        for field in KEYED_BY_SETUP:
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
