"""Pieces shared by the stage runners: prompt sets, per-setup configs, exporting HF checkpoints, run names."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Dict, List

from omegaconf import DictConfig, OmegaConf, open_dict
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pairwise_rl.data.records import Prompt
from pairwise_rl.models.sharding import save_pretrained
from pairwise_rl.pipeline import StageContext, ensure
from pairwise_rl.tasks.demonstrations import demonstrations
from pairwise_rl.tasks.digits import sample_problems

log = logging.getLogger(__name__)

HF_DIR = "hf"
HELD_OUT_SEED = 0  # val/test prompts do not depend on the run seed: every seed is judged on the same prompts


def digits_prompt_records(cfg: DictConfig, split: str, n: int) -> List[Prompt]:
    """Prompts of a split with their (imperfect) demonstration as reference, the `reference` anchor's input."""
    d = cfg.data.digits
    seed = cfg.seed if split == "train" else HELD_OUT_SEED
    problems = sample_problems(split, n, seed, d.kinds, d.min_items, d.max_items, d.max_addend)
    return demonstrations(problems, d.corruption_rate, seed if split == "train" else 10_000 + len(split))


def digits_prompts(cfg: DictConfig, split: str, n: int) -> List[str]:
    return [record.prompt for record in digits_prompt_records(cfg, split, n)]


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

