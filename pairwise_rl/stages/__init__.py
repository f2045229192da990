"""`stage=` commands. Artifact stages (sft, pairs, rm, ppo) run through the pipeline cache; the rest compose them."""

from __future__ import annotations

from typing import Callable

from omegaconf import DictConfig

from pairwise_rl.registry import Registry

STAGES: Registry[Callable[[DictConfig], object]] = Registry("stage")

# Importing the stage modules registers them.
from pairwise_rl.stages import cache, compare, evaluate, fetch_model, pairs, pipeline, ppo, rm, rm_eval, sft  # noqa: E402,F401
