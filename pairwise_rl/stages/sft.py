"""stage=sft: train the policy on imperfect demonstrations, export it, evaluate it on held-out prompts."""

from __future__ import annotations

from typing import Dict

from omegaconf import DictConfig

from pairwise_rl.distributed import compute_device
from pairwise_rl.eval.policy import evaluate_policy
from pairwise_rl.eval.report import gold_column, print_gold_table
from pairwise_rl.models.factory import init_policy
from pairwise_rl.models.lora import apply_lora, trainable_fraction
from pairwise_rl.modules.sft import SFTModule
from pairwise_rl.pipeline import StageContext, artifact_stage
from pairwise_rl.stages import STAGES
from pairwise_rl.stages.common import digits_prompt_records, digits_prompts, export_hf, run_artifact_stage, run_name
from pairwise_rl.tasks.digits import gold_score, mean_by_kind
from pairwise_rl.training import build_trainer, finish_loggers, fit

SFT_KEYS = ("seed", "model", "data", "sft", "generation", "eval")


@artifact_stage("sft", needs=(), keys=SFT_KEYS)
def build_sft(cfg: DictConfig, ctx: StageContext) -> Dict[str, float]:
    model, tokenizer = init_policy(cfg.model, cfg.seed)
    apply_lora(model, cfg.model.lora)
    model.to(compute_device(cfg.trainer))  # evaluation before fit runs where training will
    d = cfg.data.digits
    demos = digits_prompt_records(cfg, "train", d.num_train_prompts)
    test_prompts = digits_prompts(cfg, "test", cfg.eval.num_prompts)

    # The untrained model's score is the floor SFT must clear; it is deterministic from the seed.
    with ctx.timed("evaluate untrained"):
        before = evaluate_policy(model, tokenizer, test_prompts, cfg.generation, cfg.data.max_prompt_tokens,
                                 greedy=cfg.eval.greedy, samples_per_prompt=cfg.eval.samples_per_prompt,
                                 batch_size=cfg.eval.batch_size)

    module = SFTModule(model, tokenizer, demos, digits_prompts(cfg, "val", d.num_val_prompts), cfg, cfg.seed)
    trainer = build_trainer(cfg, ctx.dir, stage="sft", run_name=run_name(cfg, ctx), val_every=cfg.sft.val_every,
                            checkpoint_every=cfg.sft.checkpoint_every,
                            gradient_clip_val=cfg.sft.max_grad_norm)
    with ctx.timed("train"):
        fit(trainer, module, ctx.dir)
    export_hf(model, tokenizer, ctx)

    with ctx.timed("evaluate"):
        after = evaluate_policy(model, tokenizer, test_prompts, cfg.generation, cfg.data.max_prompt_tokens,
                                out_dir=ctx.dir, greedy=cfg.eval.greedy, tag="sft",
                                samples_per_prompt=cfg.eval.samples_per_prompt, batch_size=cfg.eval.batch_size)
    demo_gold = _demo_gold(demos)
    columns = {"untrained": gold_column(before), "demonstrations": gold_column(demo_gold),
               "sft (sampled)": gold_column(after)}
    if cfg.eval.greedy:
        columns["sft (greedy)"] = gold_column(after, "greedy")
    print_gold_table("SFT: gold score on held-out test prompts", columns, d.kinds)
    metrics = {**after, **{f"init/{k}": v for k, v in before.items()},
               **{f"demos/{k}": v for k, v in demo_gold.items()},
               "nonfinite_skipped": float(module.guard.skipped),
               "local_param_fraction": module.local_param_fraction,
               "trainable_param_fraction": trainable_fraction(model)}
    finish_loggers(trainer, metrics, tables={"samples/sft": ctx.dir / "samples.jsonl"},
                   max_table_rows=cfg.logger.table_rows)
    return metrics


def _demo_gold(demos) -> Dict[str, float]:
    scores = mean_by_kind([d.prompt for d in demos], [gold_score(d.prompt, d.reference) for d in demos])
    return {f"gold_sampled/{k}": v for k, v in scores.items()}


@STAGES.register("sft")
def sft_command(cfg: DictConfig):
    return run_artifact_stage(cfg, "sft")
