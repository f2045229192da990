"""stage=rm: train the RM (bt | generative) on the pairs artifact, evaluate its accuracy and calibration.

stage=rm_compare: both RM modes on the same SFT policy and pairs, side by side.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Dict, List

from omegaconf import DictConfig

from pairwise_rl.data.records import Preference
from pairwise_rl.distributed import compute_device
from pairwise_rl.files import read_json, write_json
from pairwise_rl.eval.metrics import GROUP_RELIABILITY, Reliability
from pairwise_rl.eval.plots import plot_reliability
from pairwise_rl.eval.preference import judge_pairs, judged_by_group, orient_pairs, write_judged_pairs
from pairwise_rl.eval.report import print_table, transpose
from pairwise_rl.models.factory import init_policy, init_random_policy
from pairwise_rl.models.lora import apply_lora, trainable_fraction
from pairwise_rl.models.sharding import save_pretrained
from pairwise_rl.modules.reward_model import RewardModelModule
from pairwise_rl.pipeline import StageContext, artifact_stage, ensure, stage_metrics
from pairwise_rl.registry import Registry
from pairwise_rl.rewards import RM_MODES
from pairwise_rl.stages.registry import STAGES
from pairwise_rl.stages.common import HF_DIR, run_artifact_stage, run_name, with_values
from pairwise_rl.stages.pairs import pairs_path, read_pairs, uses_sft_policy
from pairwise_rl.tasks.base import load_task
from pairwise_rl.training import build_trainer, finish_loggers, fit

log = logging.getLogger(__name__)

RM_KEYS = ("seed", "model", "rm", "generation")
TABLE_METRICS = ("accuracy", "annotator_accuracy", "gold_accuracy", "nll", "brier", "ece", "oracle_prob_mae",
                 "position_consistency", "accuracy_first_order", "accuracy_second_order")


def _from_sft(cfg: DictConfig, ctx: StageContext) -> Path:
    """The SFT policy where the task trains one (digits); on a preference dataset, the configured model itself."""
    if "sft" in ctx.needs:
        return ctx.needs["sft"] / HF_DIR
    return _fresh(cfg, ctx)


def _fresh(cfg: DictConfig, ctx: StageContext) -> Path:
    """The configured model's own starting weights: the pretrained checkpoint of a hub model, or the random
    initialisation (seeded by cfg.seed) of a tiny model trained from scratch -- a judge that never saw SFT."""
    model, tokenizer = init_policy(cfg.model, cfg.seed)
    return save_pretrained(model, tokenizer, ctx.dir / "init")


def _random(cfg: DictConfig, ctx: StageContext) -> Path:
    """The configured architecture with random weights (seeded by cfg.seed): for a pretrained model, the judge
    without what pretraining taught it (for a tiny model the same as fresh)."""
    model, tokenizer = init_random_policy(cfg.model, cfg.seed)
    return save_pretrained(model, tokenizer, ctx.dir / "init")


# Where the RM's weights start (rm.init).
RM_INITS: Registry[Callable[[DictConfig, StageContext], Path]] = Registry("rm init")
RM_INITS.register("sft")(_from_sft)
RM_INITS.register("fresh")(_fresh)
RM_INITS.register("random")(_random)


def starting_point(cfg: DictConfig, ctx: StageContext) -> Path:
    return RM_INITS.get(cfg.rm.init)(cfg, ctx)


def training_pairs(cfg: DictConfig, pairs_dir: Path, data: Dict[str, List[Preference]]) -> List[Preference]:
    """The split the RM trains on, cut to its first rm.pairs_used pairs. Collection is prefix-stable, so the sizes
    of a scaling sweep are nested subsets of one collected set; a split too small for the cut is an error, never a
    silently smaller run."""
    pairs = data[cfg.rm.train_split]
    used = cfg.rm.pairs_used
    if used is None:
        return pairs
    if used > len(pairs):
        raise ValueError(f"rm.pairs_used={used}, but {pairs_path(pairs_dir, cfg.rm.train_split)} holds only "
                         f"{len(pairs)} pairs")
    return pairs[:used]


@artifact_stage("rm", needs=lambda cfg: ("sft", "pairs") if uses_sft_policy(cfg) else ("pairs",), keys=RM_KEYS)
def build_rm(cfg: DictConfig, ctx: StageContext) -> Dict[str, float]:
    data = read_pairs(ctx.needs["pairs"])
    train = training_pairs(cfg, ctx.needs["pairs"], data)
    # Digits knows the gold judge and the annotator's probabilities; a human dataset has only its labels.
    task = load_task(cfg)
    gold = task.gold
    val, test = orient_pairs(data["val"], 1, gold), orient_pairs(data["test"], 0, gold)

    judge_cls = RM_MODES.get(cfg.rm.mode)
    judge = judge_cls.from_pretrained(str(starting_point(cfg, ctx)), **judge_cls.config_spec(cfg))
    if judge.model is not None:
        apply_lora(judge.model, cfg.model.lora)
        judge.model.to(compute_device(cfg.trainer))  # evaluation before fit runs where training will
    # the SFT model before training: chance level
    before = ctx.kept("evaluate before training", lambda: judge_pairs(judge, test, cfg.rm.ece_bins).metrics)

    trainer = None
    if judge.model is not None:  # the gold judge has nothing to train
        module = RewardModelModule(judge, train, val, cfg, cfg.seed)
        trainer = build_trainer(cfg, ctx.dir, stage="rm", run_name=run_name(cfg, ctx), val_every=cfg.rm.val_every,
                                checkpoint_every=cfg.rm.checkpoint_every, gradient_clip_val=cfg.rm.max_grad_norm)
        with ctx.timed("train"):
            fit(trainer, module, ctx.dir)
    judge.save(ctx.dir / HF_DIR)

    with ctx.timed("evaluate"):
        # validation pairs (their own prompts): what a tuning sweep selects on (tune.select.metric: val RM ...)
        validated = judge_pairs(judge, val, cfg.rm.ece_bins).metrics
        judged = judge_pairs(judge, test, cfg.rm.ece_bins)
        by_group = judged_by_group(test, judged, [task.group_of(p) for p in test.prompts], cfg.rm.ece_bins)
    write_judged_pairs(ctx.dir, test, judged)
    write_json(ctx.dir / GROUP_RELIABILITY, {g: j.reliability.__dict__ for g, j in by_group.items()})
    plot_reliability({cfg.rm.mode: judged.reliability,
                      **{f"{cfg.rm.mode}, {g}": j.reliability for g, j in by_group.items()}},
                     ctx.dir / "reliability.png", title=f"{cfg.rm.mode} RM on held-out pairs")
    shown = [m for m in TABLE_METRICS if m in judged.metrics]
    print_table(f"RM ({cfg.rm.mode}): held-out pairs (n={len(test.prompts)})",
                transpose({"before training": {m: before[m] for m in shown},
                           "trained": {m: judged.metrics[m] for m in shown}}))
    metrics = {**judged.metrics, **{f"init/{k}": v for k, v in before.items()},
               **{f"{g}/{k}": v for g, j in by_group.items() for k, v in j.metrics.items()},
               **{f"val/{k}": v for k, v in validated.items()},
               "train_pairs": float(len(train)), "eval_pairs": float(len(test.prompts))}
    if trainer is not None:
        metrics["nonfinite_skipped"] = float(module.guard.skipped)
        metrics["local_param_fraction"] = module.local_param_fraction
        metrics["trainable_param_fraction"] = trainable_fraction(judge.model)
        finish_loggers(trainer, metrics, images={"rm/reliability": ctx.dir / "reliability.png"},
                       tables={"rm/eval_pairs": ctx.dir / "eval_pairs.jsonl"},
                       max_table_rows=cfg.logger.table_rows)
    return metrics


@STAGES.register("rm")
def rm_command(cfg: DictConfig):
    """Train a reward model (rm=bt: Bradley-Terry scalar; rm=generative: pairwise verdict-token judge)."""
    return run_artifact_stage(cfg, "rm")


COMPARED_MODES = ("bt", "generative")


@STAGES.register("rm_compare")
def rm_compare_command(cfg: DictConfig) -> Dict[str, Dict[str, float]]:
    """Both RM modes from the same SFT policy and the same pairs; one table, one reliability plot."""
    results, diagrams = {}, {}
    configs = {mode: with_values(cfg, {"rm.mode": mode}) for mode in COMPARED_MODES}
    for mode, mode_cfg in configs.items():  # each mode checks its own keys, as validate() does for rm.mode
        RM_MODES.get(mode).check_config(mode_cfg)
    for mode, mode_cfg in configs.items():
        out = ensure(mode_cfg, "rm")
        results[mode] = stage_metrics(out)
        diagrams[mode] = Reliability(**read_json(out / "reliability.json"))
    out_dir = Path(cfg.paths.output_dir)
    print_table("Reward models on held-out pairs: Bradley-Terry vs generative pairwise",
                transpose({mode: {m: r.get(m) for m in TABLE_METRICS} for mode, r in results.items()}))
    plot = plot_reliability(diagrams, out_dir / "rm_reliability.png", title="RM reliability (held-out pairs)")
    write_json(out_dir / "rm_compare.json", results)
    log.info("reliability diagram: %s", plot)
    return results
