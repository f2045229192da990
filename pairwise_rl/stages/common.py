"""Pieces shared by the stage runners: per-setup configs, exporting HF checkpoints, run names."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Dict

from omegaconf import DictConfig, OmegaConf, open_dict
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pairwise_rl.models.sharding import save_pretrained
from pairwise_rl.pipeline import StageContext, ensure

log = logging.getLogger(__name__)

HF_DIR = "hf"


def export_hf(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, ctx: StageContext) -> Path:
    return save_pretrained(model, tokenizer, ctx.dir / HF_DIR)


def with_values(cfg: DictConfig, values: Dict[str, object]) -> DictConfig:
    """A copy of cfg with dotted keys set (e.g. {"rm.mode": "bt"}): one setup of a comparison."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        for key, value in values.items():
            OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def run_name(cfg: DictConfig, ctx: StageContext) -> str:
    return f"{ctx.name}-{ctx.key}"


def run_artifact_stage(cfg: DictConfig, name: str) -> Path:
    """`stage=<name>`: build (or reuse) the artifact and print where it is and what it measured."""
    out = ensure(cfg, name)
    log.info("[%s] artifact: %s", name, out)
    return out

