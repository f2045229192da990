"""stage=judge: train the evaluation judge (judge.name=gold_rm) once, on the pairs no proxy RM sees.
stage=evaluate: judge a PPO artifact's held-out samples with the independent judge (eval/judge.py).

Evaluation reads the PPO stage's samples.jsonl (the SFT and the PPO policy answering the same held-out prompts,
in the same order), so changing the judge re-judges without regenerating or retraining anything.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List

from lightning.fabric.utilities.seed import seed_everything
from omegaconf import DictConfig

from pairwise_rl.distributed import compute_device
from pairwise_rl.files import read_jsonl, write_jsonl
from pairwise_rl.eval.judge import judge_kind, judge_responses, load_judge, summarise
from pairwise_rl.eval.report import print_table
from pairwise_rl.pipeline import StageContext, artifact_stage
from pairwise_rl.stages.registry import STAGES
from pairwise_rl.stages.common import HF_DIR, run_artifact_stage, run_name, with_values
from pairwise_rl.stages.rm import build_rm
from pairwise_rl.training import build_trainer, finish_loggers

log = logging.getLogger(__name__)

POLICIES = ("sft", "ppo")


def judge_config(cfg: DictConfig) -> DictConfig:
    """The gold_rm judge is an RM of judge.mode trained on the `judge` pairs for judge.max_steps, whatever the
    setup's own rm.mode: every setup and seed of a comparison shares it."""
    return with_values(cfg, {"rm.mode": cfg.judge.mode, "rm.max_steps": cfg.judge.max_steps,
                             "rm.init": "sft", "rm.train_split": "judge"})


@artifact_stage("judge", needs=("pairs",), keys=("judge", "model", "rm", "generation"), prepare=judge_config)
def build_judge(cfg: DictConfig, ctx: StageContext) -> Dict[str, float]:
    seed_everything(cfg.judge.seed, verbose=False)  # its own seed, not the run's: one judge for every seed
    return build_rm(with_values(cfg, {"seed": cfg.judge.seed}), ctx)


def evaluate_needs(cfg: DictConfig) -> tuple:
    return ("ppo", "judge") if judge_kind(cfg) == "gold_rm" else ("ppo",)


@artifact_stage("evaluate", needs=evaluate_needs, keys=("judge",))
def build_evaluate(cfg: DictConfig, ctx: StageContext) -> Dict[str, float]:
    judge = load_judge(cfg, ctx.needs["judge"] / HF_DIR if "judge" in ctx.needs else None)
    if judge.model is not None:
        judge.model.to(compute_device(cfg.trainer))
    rows = read_jsonl(Path(ctx.needs["ppo"]) / "samples.jsonl")
    metrics: Dict[str, float] = {}
    evidence: List[dict] = []
    table: Dict[str, Dict[str, str]] = {}
    with ctx.timed("judge"):
        for mode in ("sampled", "greedy"):
            by_policy = {p: [r for r in rows if r["model"] == p and r["mode"] == mode] for p in POLICIES}
            if not by_policy["ppo"]:
                continue
            sft, ppo = by_policy["sft"], by_policy["ppo"]
            if [r["prompt"] for r in sft] != [r["prompt"] for r in ppo]:
                raise ValueError(f"{ctx.needs['ppo']}/samples.jsonl: the sft and ppo {mode} rows answer different "
                                 "prompts; they must come from the same evaluation (PPOModule.evaluate)")
            prompts = [r["prompt"] for r in ppo]
            references = [r.get("reference") for r in ppo]
            judged = {p: judge_responses(judge, prompts, [r["response"] for r in by_policy[p]],
                                         [r["response"] for r in sft], references, skip_self=(p == "sft"))
                      for p in POLICIES}
            for policy in POLICIES:
                stats = summarise(prompts, judged[policy], [r["kl"] for r in by_policy[policy]],
                                  [r["length"] for r in by_policy[policy]])
                for name, stat in stats.items():
                    metrics[f"{policy}/{name}_{mode}"] = stat["mean"]
                    metrics[f"{policy}/{name}_{mode}_ci95"] = stat["half_width"]
                    if mode == "sampled":
                        table.setdefault(name, {})[policy] = f"{stat['mean']:.3f} ± {stat['half_width']:.3f}"
            for i, prompt in enumerate(prompts):
                evidence.append({"mode": mode, "prompt": prompt, "reference": references[i],
                                 **{f"{p}_response": by_policy[p][i]["response"] for p in POLICIES},
                                 **{f"{p}_{k}": v[i] for p in POLICIES for k, v in judged[p].items()}})
    write_jsonl(ctx.dir / "judged.jsonl", evidence)
    metrics["prompts"] = float(len({r["prompt"] for r in rows}))
    print_table(f"Independent judge ({cfg.judge.name} -> {judge.mode}): held-out prompts, sampled responses, "
                "mean ± 95% interval over prompts", table)
    # The metrics and the judged responses as a run of their own (W&B: job_type=evaluate, a table of responses).
    trainer = build_trainer(cfg, ctx.dir, stage="evaluate", run_name=run_name(cfg, ctx), val_every=1,
                            checkpoint_every=1)
    finish_loggers(trainer, metrics, tables={"evaluate/judged": ctx.dir / "judged.jsonl"},
                   max_table_rows=cfg.logger.table_rows)
    return metrics


@STAGES.register("judge")
def judge_command(cfg: DictConfig):
    """Train the independent evaluation judge (gold_rm) on the pairs the proxy RMs never see."""
    return run_artifact_stage(cfg, "judge")


@STAGES.register("evaluate")
def evaluate_command(cfg: DictConfig):
    """Score a policy's held-out samples with the evaluation judge (gold on digits)."""
    return run_artifact_stage(cfg, "evaluate")
