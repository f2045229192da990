"""Shared fixtures: compose the real config tree (as the CLI would) with test-sized overrides."""

from __future__ import annotations

import copy
import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Callable, List, Tuple

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from pairwise_rl.cli import CONF_DIR  # also registers the schema

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Under pytest-xdist (`make test` runs -n auto) each worker gets an equal share of the cores as torch threads, and
# so do the CLI processes a test starts (OMP_NUM_THREADS): N workers x threads <= cores, never oversubscribed.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    import torch

    from pairwise_rl.hardware import threads_per_job

    THREADS = threads_per_job(WORKERS)
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    torch.set_num_threads(THREADS)

ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=None)
def _composed(overrides: Tuple[str, ...]) -> DictConfig:
    """Hydra's composition of conf/ with `overrides` (0.17 s each; a session asks for the same list hundreds of
    times). Callers get a deep copy; a composition that fails raises every time (lru_cache keeps no exceptions)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def compose_config(overrides: List[str], tmp_path: Path | None = None) -> DictConfig:
    """Compose conf/config.yaml with overrides; with tmp_path, all outputs and the cache go under it."""
    cfg = copy.deepcopy(_composed(tuple(overrides)))
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra  # the CLI never sees this node either
        if tmp_path is not None:
            cfg.paths.root_dir = str(tmp_path)
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.cache_dir = str(tmp_path / "artifacts")
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    def factory(*overrides: str) -> DictConfig:
        return compose_config(list(overrides), tmp_path)

    return factory


@pytest.fixture(scope="session")
def debug_cache(tmp_path_factory) -> Path:
    """A cache directory shared by tests that need debug-size SFT / RM artifacts (built once per session; under
    pytest-xdist once per worker, so a test that checks what a build writes never finds it built by another
    worker's test)."""
    return tmp_path_factory.mktemp("shared_artifacts")


@pytest.fixture
def make_debug_cfg(tmp_path: Path, debug_cache: Path) -> Callable[..., DictConfig]:
    """debug=fast configs whose artifacts live in the shared cache (each test still gets its own output dir)."""

    def factory(*overrides: str) -> DictConfig:
        cfg = compose_config(["debug=fast", *overrides], tmp_path)
        with open_dict(cfg):
            cfg.paths.cache_dir = str(debug_cache)
        return cfg

    return factory


@pytest.fixture
def real_cache(make_debug_cfg, tmp_path):
    """A copy of a real pairwise_vs_bt debug pipeline's artifacts (copy2 keeps the mtimes) and its result.json."""
    from pairwise_rl.cli import run
    from pairwise_rl.files import read_json
    from pairwise_rl.pipeline import COMPLETE

    cfg = make_debug_cfg("experiment=pairwise_vs_bt")
    run(cfg)
    result = read_json(Path(cfg.paths.output_dir) / "result.json")
    used = {Path(p).name for setup in result["artifacts"].values() for p in setup.values()}
    copy = tmp_path / "cache"
    copy.mkdir()
    for name in used | {Path(p).name for n in used for p in read_json(Path(cfg.paths.cache_dir) / n / COMPLETE)[
            "needs"].values()}:
        shutil.copytree(Path(cfg.paths.cache_dir) / name, copy / name)
    artifacts = {setup: {stage: Path(p).name for stage, p in paths.items()}
                 for setup, paths in result["artifacts"].items()}
    return copy, artifacts
