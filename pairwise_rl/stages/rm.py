"""stage=rm: collect preference pairs from the SFT policy, train the RM (bt | generative), evaluate calibration.

stage=rm_compare: both RM modes on the same SFT policy and pairs, side by side.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Dict, List

from omegaconf import DictConfig

from pairwise_rl.data.collect import collect_preferences, digits_labeller
from pairwise_rl.data.records import Preference
from pairwise_rl.eval.io import read_json, read_jsonl, write_json, write_jsonl
from pairwise_rl.eval.metrics import Reliability
from pairwise_rl.eval.plots import plot_reliability
from pairwise_rl.eval.preference import judge_pairs, orient_pairs, write_judged_pairs
from pairwise_rl.eval.report import print_table, transpose
from pairwise_rl.models.factory import load_causal_lm, load_tokenizer
from pairwise_rl.modules.reward_model import RewardModelModule
from pairwise_rl.pipeline import StageContext, artifact_stage, ensure, stage_metrics
from pairwise_rl.rewards import RM_MODES
from pairwise_rl.stages import STAGES
from pairwise_rl.stages.common import HF_DIR, digits_prompts, run_artifact_stage, run_name, with_values
from pairwise_rl.training import build_trainer, finish_loggers, fit

log = logging.getLogger(__name__)

RM_KEYS = ("rm", "generation")
TABLE_METRICS = ("accuracy", "annotator_accuracy", "gold_accuracy", "nll", "brier", "ece", "oracle_prob_mae",
                 "position_consistency", "accuracy_first_order", "accuracy_second_order")


def _pairs(path: Path, collect) -> List[Preference]:
    """Pairs are collected once per artifact and kept as JSONL: evidence, and a resumed run trains on the same data."""
    if path.exists():
        return [Preference(**row) for row in read_jsonl(path)]
    collected = collect()
    write_jsonl(path, [p.to_dict() for p in collected.pairs])
    write_json(path.with_suffix(".stats.json"), {"pairs": len(collected.pairs), "prompts_used": collected.prompts_used,
                                                 "identical_samples_skipped": collected.identical_skipped})
    return collected.pairs


def collect_rm_data(cfg: DictConfig, ctx: StageContext, sft_dir: Path) -> Dict[str, List[Preference]]:
    paths = {split: ctx.dir / f"{split}_pairs.jsonl" for split in ("train", "val", "test")}
    if all(p.exists() for p in paths.values()):
        return {split: _pairs(path, None) for split, path in paths.items()}
    policy, tokenizer = load_causal_lm(str(sft_dir)), load_tokenizer(str(sft_dir))
    label = digits_labeller(dict(cfg.data.digits.tau))
    sizes = {"train": cfg.rm.num_train_pairs, "val": cfg.data.digits.num_val_prompts, "test": cfg.rm.num_eval_pairs}
    data = {}
    for split, path in paths.items():
        prompts = digits_prompts(cfg, split, sizes[split] if split != "train" else cfg.data.digits.num_train_prompts)
        seed = cfg.seed if split == "train" else 0  # held-out pairs are the same for every seed
        data[split] = _pairs(path, lambda: collect_preferences(policy, tokenizer, prompts, sizes[split],
                                                                 cfg.generation, cfg.data.max_prompt_tokens,
                                                                 seed + 17 * len(split), label))
    del policy
    gc.collect()
    return data


@artifact_stage("rm", needs=("sft",), keys=RM_KEYS)
def build_rm(cfg: DictConfig, ctx: StageContext) -> Dict[str, float]:
    sft_dir = ctx.needs["sft"] / HF_DIR
    data = collect_rm_data(cfg, ctx, sft_dir)
    taus = dict(cfg.data.digits.tau)
    val, test = orient_pairs(data["val"], 1, taus), orient_pairs(data["test"], 0, taus)

    judge_cls = RM_MODES.get(cfg.rm.mode)
    judge = judge_cls.from_pretrained(str(sft_dir), **judge_cls.config_spec(cfg))
    before = judge_pairs(judge, test, cfg.rm.ece_bins).metrics  # the SFT model before RM training: chance level

    trainer = None
    if judge.model is not None:  # the gold judge has nothing to train
        module = RewardModelModule(judge, data["train"], val, cfg, cfg.seed)
        trainer = build_trainer(cfg, ctx.dir, stage="rm", run_name=run_name(cfg, ctx), val_every=cfg.rm.val_every,
                                checkpoint_every=cfg.rm.checkpoint_every, gradient_clip_val=cfg.rm.max_grad_norm)
        fit(trainer, module, ctx.dir)
    judge.save(ctx.dir / HF_DIR)

    judged = judge_pairs(judge, test, cfg.rm.ece_bins)
    write_judged_pairs(ctx.dir, test, judged)
    plot_reliability({cfg.rm.mode: judged.reliability}, ctx.dir / "reliability.png",
                     title=f"{cfg.rm.mode} RM on held-out pairs")
    shown = [m for m in TABLE_METRICS if m in judged.metrics]
    print_table(f"RM ({cfg.rm.mode}): held-out pairs (n={len(test.prompts)})",
                transpose({"before training": {m: before[m] for m in shown},
                           "trained": {m: judged.metrics[m] for m in shown}}))
    metrics = {**judged.metrics, **{f"init/{k}": v for k, v in before.items()},
               "train_pairs": float(len(data["train"])), "eval_pairs": float(len(test.prompts))}
    if trainer is not None:
        finish_loggers(trainer, metrics)
    return metrics


@STAGES.register("rm")
def rm_command(cfg: DictConfig):
    return run_artifact_stage(cfg, "rm")


@STAGES.register("rm_compare")
def rm_compare_command(cfg: DictConfig) -> Dict[str, Dict[str, float]]:
    """Both RM modes from the same SFT policy and the same pairs; one table, one reliability plot."""
    results, diagrams = {}, {}
    for mode in ("bt", "generative"):
        out = ensure(with_values(cfg, {"rm.mode": mode}), "rm")
        results[mode] = stage_metrics(out)
        diagrams[mode] = Reliability(**read_json(out / "reliability.json"))
    out_dir = Path(cfg.paths.output_dir)
    print_table("Reward models on held-out pairs: Bradley-Terry vs generative pairwise",
                transpose({mode: {m: r.get(m) for m in TABLE_METRICS} for mode, r in results.items()}))
    plot = plot_reliability(diagrams, out_dir / "rm_reliability.png", title="RM reliability (held-out pairs)")
    write_json(out_dir / "rm_compare.json", results)
    log.info("reliability diagram: %s", plot)
    return results
