"""stage=pairs: the preference pairs the reward models train and are judged on.

On digits, two samples of the SFT policy per prompt, labelled by the oracle annotator (RLHF's own data loop). On
a preference dataset (data=hh_rlhf | ultrafeedback | jsonl), its rows, read and checked by data/readers.py, split
into train / val / test by prompt. Both RM modes of a comparison read the same artifact, so they train on exactly
the same pairs and the pairs are built once, not once per mode.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Dict, List

from omegaconf import DictConfig, OmegaConf

from pairwise_rl.data.collect import collect_preferences, digits_labeller
from pairwise_rl.data.encoding import truncate_text
from pairwise_rl.data.readers import apply_length_policy, read_preferences, split_by_prompt
from pairwise_rl.data.records import Preference
from pairwise_rl.distributed import compute_device
from pairwise_rl.eval.io import read_jsonl, write_jsonl
from pairwise_rl.models.factory import init_tokenizer, load_causal_lm, load_tokenizer
from pairwise_rl.pipeline import StageContext, artifact_stage
from pairwise_rl.stages import STAGES
from pairwise_rl.stages.common import HF_DIR, digits_prompts, run_artifact_stage

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
PAIRS_KEYS = ("seed", "rm.num_train_pairs", "rm.num_eval_pairs", "generation", "data")


def pairs_path(directory: Path, split: str) -> Path:
    return Path(directory) / f"{split}_pairs.jsonl"


def read_pairs(directory: Path) -> Dict[str, List[Preference]]:
    return {split: [Preference(**row) for row in read_jsonl(pairs_path(directory, split))] for split in SPLITS}


def write_splits(directory: Path, splits: Dict[str, List[Preference]]) -> Dict[str, float]:
    """Each split's pairs as JSONL (evidence, and what the RMs read); returns the pair counts."""
    for split in SPLITS:
        write_jsonl(pairs_path(directory, split), [p.to_dict() for p in splits[split]])
    return {f"{split}/pairs": float(len(splits[split])) for split in SPLITS}


def uses_sft_policy(cfg: DictConfig) -> bool:
    """Digits pairs are sampled from the SFT policy; a preference dataset brings its own responses."""
    return cfg.data.source == "digits"


@artifact_stage("pairs", needs=lambda cfg: ("sft",) if uses_sft_policy(cfg) else (), keys=PAIRS_KEYS)
def build_pairs(cfg: DictConfig, ctx: StageContext) -> Dict[str, float]:
    if not uses_sft_policy(cfg):
        return dataset_pairs(cfg, ctx)
    sft_dir = str(ctx.needs["sft"] / HF_DIR)
    policy, tokenizer = load_causal_lm(sft_dir).to(compute_device(cfg.trainer)), load_tokenizer(sft_dir)
    label = digits_labeller(dict(cfg.data.digits.tau))
    sizes = {"train": cfg.rm.num_train_pairs, "val": cfg.data.digits.num_val_prompts, "test": cfg.rm.num_eval_pairs}
    metrics: Dict[str, float] = {}
    splits: Dict[str, List[Preference]] = {}
    for split in SPLITS:
        prompts = digits_prompts(cfg, split, cfg.data.digits.num_train_prompts if split == "train" else sizes[split])
        seed = cfg.seed if split == "train" else 0  # held-out pairs are the same for every seed
        with ctx.timed(f"collect {split}"):
            collected = collect_preferences(policy, tokenizer, prompts, sizes[split], cfg.generation,
                                            cfg.data.max_prompt_tokens, seed + 17 * len(split), label)
        splits[split] = collected.pairs
        metrics.update({f"{split}/prompts_used": float(collected.prompts_used),
                        f"{split}/identical_samples_skipped": float(collected.identical_skipped)})
    del policy
    gc.collect()
    return {**write_splits(ctx.dir, splits), **metrics}


def dataset_pairs(cfg: DictConfig, ctx: StageContext) -> Dict[str, float]:
    d = cfg.data
    with ctx.timed("read"):
        records, rows, report = read_preferences(d.path, d.source, OmegaConf.to_container(d.fields), d.on_bad_row,
                                                 d.split, d.max_rows)
        tokenizer = init_tokenizer(cfg.model)
        records = apply_length_policy(records, rows, lambda text: len(tokenizer(text, add_special_tokens=False)
                                                                      ["input_ids"]),
                                      lambda text, limit, keep: truncate_text(tokenizer, text, limit, keep),
                                      d.max_prompt_tokens, d.max_response_tokens, d.overlong, report)
    splits = split_by_prompt(records, d.val_fraction, d.test_fraction)
    caps = {"train": cfg.rm.num_train_pairs, "val": None, "test": cfg.rm.num_eval_pairs}
    for split in SPLITS:
        splits[split] = splits[split][:caps[split]] if caps[split] else splits[split]
        if not splits[split]:
            raise ValueError(f"data.path={d.path}: no {split} pairs left after reading ({report.kept} rows kept); "
                             f"check data.{split}_fraction and the skip counts {dict(report.skipped)}")
    metrics = {**report.as_metrics(), **write_splits(ctx.dir, splits)}
    log.info("read %s: %d rows, %d kept, skipped %s, truncated %s", d.path, report.rows, report.kept,
             dict(report.skipped), dict(report.truncated))
    return metrics


@STAGES.register("pairs")
def pairs_command(cfg: DictConfig):
    return run_artifact_stage(cfg, "pairs")
