"""Read a comparison's runs: every result.json below a directory, one observation per (setup, seed), the code
versions that built them (mixed versions are refused unless allowed) and the RMs each run used."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, List, Tuple

from omegaconf import OmegaConf

from pairwise_rl import provenance
from pairwise_rl.errors import DataSourceError, UserError
from pairwise_rl.files import read_json
from pairwise_rl.eval.runs import by_seed


START_ROW = "sft (start)"  # a pipeline result's row of the policy every setup starts from (before any RL)


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


def all_versions(versions: Dict[str, List[str]]) -> List[str]:
    """Every code version the compared artifacts came from (more than one only with compare.allow_mixed_code)."""
    return sorted({v for vs in versions.values() for v in vs})


@functools.lru_cache(maxsize=None)  # artifacts are content-addressed and never rewritten: read each config once
def _rm_mode_and_init(rm_dir: str) -> Tuple[str, str]:
    rm = OmegaConf.load(Path(rm_dir) / "config.yaml").rm  # the config the artifact was built with
    return rm.mode, rm.get("init", "sft")


def rm_mode(rm_dir: str) -> str:
    return _rm_mode_and_init(rm_dir)[0]


def rm_label(rm_dir: str) -> str:
    """The RM's mode, and where its weights started when that was not the default (the SFT policy): e.g.
    'generative (init=random)', so a scaling curve never joins judges with and without pretraining."""
    mode, init = _rm_mode_and_init(rm_dir)
    return mode if init == "sft" else f"{mode} (init={init})"


def artifact_order(result: dict) -> List[str]:
    """One run's setups with artifacts, in the experiment's order: result.json sorts its keys, `setups` keeps the
    order (older results without it: alphabetical)."""
    artifacts = result["artifacts"]
    return list(dict.fromkeys([s for s in result.get("setups", []) if s in artifacts] + sorted(artifacts)))


def distinct_rms(result: dict) -> Dict[str, str]:
    """{setup: RM dir} for the first setup (in the experiment's order) of each distinct RM in one run: setups that
    share an RM count once."""
    seen: Dict[str, str] = {}
    for setup in artifact_order(result):
        rm_dir = result["artifacts"][setup].get("rm")
        if rm_dir is not None and rm_dir not in seen.values():
            seen[setup] = rm_dir
    return seen
