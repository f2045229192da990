"""stage=pairs: the preference pairs the reward models train and are judged on.

On digits, two samples of the SFT policy per prompt, labelled by the oracle annotator (RLHF's own data loop). On
a preference dataset (data=hh_rlhf | ultrafeedback | jsonl), its rows, read and checked by data/readers.py, split
into train / val / test by prompt. Both RM modes of a comparison read the same artifact, so they train on exactly
the same pairs and the pairs are built once, not once per mode.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Dict, List

from omegaconf import DictConfig

from pairwise_rl.data.collect import collect_preferences
from pairwise_rl.data.records import Preference
from pairwise_rl.distributed import compute_device
from pairwise_rl.files import read_jsonl, write_jsonl
from pairwise_rl.models.factory import load_causal_lm, load_tokenizer
from pairwise_rl.pipeline import StageContext, artifact_stage
from pairwise_rl.precision import frozen_dtype
from pairwise_rl.stages.registry import STAGES
from pairwise_rl.stages.common import HF_DIR, run_artifact_stage
from pairwise_rl.tasks.base import load_task

SPLITS = ("train", "val", "test")


def pairs_keys(cfg: DictConfig) -> tuple:
    """Digits pairs are sampled (seed, generation); a dataset's are read, split and truncated by the tokenizer."""
    if uses_sft_policy(cfg):
        return ("seed", "rm.num_train_pairs", "rm.num_eval_pairs", "generation", "data")
    return ("rm.num_train_pairs", "rm.num_eval_pairs", "data", "model.name_or_path", "model.tokenizer",
            "model.fetch")


def pairs_path(directory: Path, split: str) -> Path:
    return Path(directory) / f"{split}_pairs.jsonl"


def read_pairs(directory: Path) -> Dict[str, List[Preference]]:
    """train / val / test, and `judge` where the artifact reserved pairs for the evaluation judge."""
    present = [*SPLITS, *(["judge"] if pairs_path(directory, "judge").exists() else [])]
    return {split: [Preference(**row) for row in read_jsonl(pairs_path(directory, split))] for split in present}


def write_splits(directory: Path, splits: Dict[str, List[Preference]]) -> Dict[str, float]:
    """Each split's pairs as JSONL (evidence, and what the RMs read); returns the pair counts."""
    for split in splits:
        write_jsonl(pairs_path(directory, split), [p.to_dict() for p in splits[split]])
    return {f"{split}/pairs": float(len(pairs)) for split, pairs in splits.items()}


def uses_sft_policy(cfg: DictConfig) -> bool:
    """Digits pairs are sampled from the SFT policy; a preference dataset brings its own responses."""
    return cfg.data.task == "digits"


@artifact_stage("pairs", needs=lambda cfg: ("sft",) if uses_sft_policy(cfg) else (), keys=pairs_keys,
                numeric=uses_sft_policy)  # a dataset's pairs are read, not computed
def build_pairs(cfg: DictConfig, ctx: StageContext) -> Dict[str, float]:
    task = load_task(cfg)
    if not uses_sft_policy(cfg):
        with ctx.timed("read"):
            splits = task.preference_pairs()
        return {**task.pair_metrics(), **write_splits(ctx.dir, splits)}
    sft_dir = str(ctx.needs["sft"] / HF_DIR)
    policy = load_causal_lm(sft_dir, frozen_dtype(cfg)).to(compute_device(cfg.trainer))  # frozen: bf16 under bf16
    tokenizer = load_tokenizer(sft_dir)
    sizes = {"train": cfg.rm.num_train_pairs, "val": cfg.data.digits.num_val_prompts, "test": cfg.rm.num_eval_pairs}
    metrics: Dict[str, float] = {}
    splits: Dict[str, List[Preference]] = {}
    for split in SPLITS:
        prompts = task.collection_prompts(split, cfg.data.digits.num_train_prompts if split == "train"
                                          else sizes[split])
        seed = cfg.seed if split == "train" else 0  # held-out pairs are the same for every seed
        with ctx.timed(f"collect {split}"):
            collected = collect_preferences(policy, tokenizer, prompts, sizes[split], cfg.generation,
                                            cfg.data.max_prompt_tokens, seed + 17 * len(split), task.label_pair())
        splits[split] = collected.pairs
        metrics.update({f"{split}/prompts_used": float(collected.prompts_used),
                        f"{split}/identical_samples_skipped": float(collected.identical_skipped)})
    del policy
    gc.collect()
    return {**write_splits(ctx.dir, splits), **metrics}


@STAGES.register("pairs")
def pairs_command(cfg: DictConfig):
    """Build the RM's preference pairs: read a dataset, or sample from the SFT policy and label by the oracle."""
    return run_artifact_stage(cfg, "pairs")
