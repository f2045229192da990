"""The `stage=` registry. Stage modules register into it; `pairwise_rl.stages` imports them all (this module
imports none of them, so registration runs no import circle). A stage's docstring's first line is its one-line
description in `pairwise-rl --help`."""

from __future__ import annotations

from typing import Callable

from omegaconf import DictConfig

from pairwise_rl.registry import Registry

STAGES: Registry[Callable[[DictConfig], object]] = Registry("stage")


def describe(name: str) -> str:
    """The first line of a stage's docstring."""
    doc = (STAGES.get(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
