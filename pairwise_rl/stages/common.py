"""Pieces shared by the stage runners: prompt sets, exporting HF checkpoints, run names."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List

from omegaconf import DictConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pairwise_rl.pipeline import StageContext, ensure, stage_metrics
from pairwise_rl.tasks.digits import sample_problems

log = logging.getLogger(__name__)

HF_DIR = "hf"
HELD_OUT_SEED = 0  # val/test prompts do not depend on the run seed: every seed is judged on the same prompts


def digits_prompts(cfg: DictConfig, split: str, n: int) -> List[str]:
    d = cfg.data.digits
    seed = cfg.seed if split == "train" else HELD_OUT_SEED
    return [p.prompt for p in sample_problems(split, n, seed, d.kinds, d.min_items, d.max_items, d.max_addend)]


def export_hf(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, ctx: StageContext) -> Path:
    out = ctx.dir / HF_DIR
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def run_name(cfg: DictConfig, ctx: StageContext) -> str:
    return f"{ctx.name}-{ctx.key}"


def run_artifact_stage(cfg: DictConfig, name: str) -> Path:
    """`stage=<name>`: build (or reuse) the artifact and print where it is and what it measured."""
    out = ensure(cfg, name)
    log.info("[%s] artifact: %s", name, out)
    return out


def metrics_of(path: Path) -> dict:
    return stage_metrics(path)
