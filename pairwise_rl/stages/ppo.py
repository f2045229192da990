"""stage=ppo: optimise the SFT policy against the trained RM (any ppo.reward form, any ppo.advantage estimator)."""

from __future__ import annotations

import logging
from typing import Dict, List

import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel

from pairwise_rl.algos.advantages import ADVANTAGE_ESTIMATORS
from pairwise_rl.distributed import MULTI_PROCESS_STRATEGIES, compute_device
from pairwise_rl.files import write_json, write_jsonl
from pairwise_rl.eval.report import print_table, transpose
from pairwise_rl.models.factory import load_causal_lm, load_scalar_model, load_tokenizer
from pairwise_rl.models.lora import adapter_free_view, apply_lora, has_lora, trainable_fraction
from pairwise_rl.models.sampling import SamplingCopy, wants_copy
from pairwise_rl.modules.ppo import PPOModule
from pairwise_rl.pipeline import StageContext, artifact_stage
from pairwise_rl.precision import frozen_dtype
from pairwise_rl.rewards import load_reward_model
from pairwise_rl.rewards.ppo_reward import ppo_label
from pairwise_rl.stages.registry import STAGES
from pairwise_rl.stages.common import HF_DIR, export_hf, run_artifact_stage, run_name
from pairwise_rl.tasks.base import Task, load_task
from pairwise_rl.training import build_trainer, finish_loggers, fit

log = logging.getLogger(__name__)

PPO_KEYS = ("ppo",)
TABLE_METRICS = ("reward_sampled", "kl_sampled", "anchor/win_rate_sampled", "anchor/gold_win_rate_sampled",
                 "response_length_sampled")


def table_metrics(task: Task) -> List[str]:
    """The rows of the printed PPO table: gold per prompt group where the task has a gold judge, then the rest."""
    gold = ["gold_sampled/all", *(f"gold_sampled/{g}" for g in task.groups), "gold_greedy/all"] if task.gold else []
    return [*gold, *TABLE_METRICS]


def build_critic(cfg: DictConfig, reward_model, sft_dir: str, rm_dir) -> PreTrainedModel:
    """The value network of ppo.advantage=gae: the RM's or the SFT policy's backbone, with a zero value head."""
    critic_from_rm = cfg.ppo.critic_init == "rm" and reward_model.model is not None
    if cfg.ppo.critic_init == "rm" and not critic_from_rm:
        log.info("rm=%s has no network to start the critic from; using the SFT backbone", reward_model.mode)
    critic = load_scalar_model(str(rm_dir) if critic_from_rm else sft_dir, cfg.model.dtype)
    # The value head always starts at zero. A random head (or a BT head, which is only meaningful at the final
    # token) puts per-token noise into every GAE advantage; measured on digits with the gold reward, that noise
    # alone made PPO lose gold. A zero head starts from whitened reward-to-go and the critic learns from there.
    torch.nn.init.zeros_(critic.score.weight)
    return critic


def build_reference(cfg: DictConfig, policy: PreTrainedModel, sft_dir: str) -> PreTrainedModel:
    """PPO's frozen reference (the SFT policy). Under LoRA on one process it is the policy's own frozen base with
    the adapters left out: one set of base weights serves both. Otherwise the SFT policy is loaded again. A sharded
    policy keeps a separate reference: its base weights are shards that only the policy's own forward gathers.

    The reference computes exactly as the policy does (its master dtype, under the stage's autocast), not in the
    frozen bf16 weights: the KL to it must start at 0. Measured on SmolLM2 under bf16-mixed, a bf16-weight
    reference put the KL at iteration 0 at -0.11 nats per response (its norms and embeddings round differently),
    a third of the KL target."""
    if has_lora(policy) and cfg.trainer.strategy not in MULTI_PROCESS_STRATEGIES:
        return adapter_free_view(policy)
    return load_causal_lm(sft_dir, cfg.model.dtype)


@artifact_stage("ppo", needs=("sft", "rm"), keys=PPO_KEYS)
def build_ppo(cfg: DictConfig, ctx: StageContext) -> Dict[str, float]:
    sft_dir, rm_dir = str(ctx.needs["sft"] / HF_DIR), ctx.needs["rm"] / HF_DIR
    tokenizer = load_tokenizer(sft_dir)
    policy = apply_lora(load_causal_lm(sft_dir, cfg.model.dtype), cfg.model.lora)  # trained: master weights
    reference = build_reference(cfg, policy, sft_dir)
    rm_in_fp32 = cfg.ppo.rm_precision == "float32"  # fp32 weights, and its forwards leave the stage's autocast
    reward_model = load_reward_model(rm_dir, "float32" if rm_in_fp32 else frozen_dtype(cfg))
    reward_model.full_precision = rm_in_fp32
    reward_model.both_orders = cfg.ppo.both_orders
    reward_model.order_average = cfg.ppo.order_average
    critic = build_critic(cfg, reward_model, sft_dir, rm_dir) if ADVANTAGE_ESTIMATORS.get(
        cfg.ppo.advantage).needs_critic else None
    if critic is not None:
        apply_lora(critic, cfg.model.lora)
    device = compute_device(cfg.trainer)  # evaluation before fit runs where training will
    for model in (policy, reference, critic, reward_model.model):  # critic: None when critic-free
        if model is not None:
            model.to(device)

    task = load_task(cfg)
    prompts, test_prompts = task.rl_prompts(), task.eval_prompts()
    sampling_dtype = wants_copy(cfg)  # bf16-mixed: sample from a bf16 copy of the policy, refreshed per update
    module = PPOModule(policy, reference, critic, reward_model, tokenizer, task, prompts, task.val_prompts(), cfg,
                       cfg.seed, samples_dir=ctx.dir / "val_samples",
                       sampler=None if sampling_dtype is None else SamplingCopy(sampling_dtype))

    before, before_rows = ctx.kept("evaluate sft", lambda: module.evaluate(
        test_prompts, tag="sft", greedy=cfg.eval.greedy, samples_per_prompt=cfg.eval.samples_per_prompt,
        batch_size=cfg.eval.batch_size))
    trainer = build_trainer(cfg, ctx.dir, stage="ppo", run_name=run_name(cfg, ctx), val_every=cfg.ppo.val_every,
                            checkpoint_every=cfg.ppo.checkpoint_every, log_every_n_steps=1)
    with ctx.timed("train"):
        fit(trainer, module, ctx.dir)
    # Wall time is not a metric (metrics repeat exactly; seconds never do): a phase of COMPLETE.json instead.
    ctx.phases["rollout+update"] = round(sum(module.phase_seconds.values()), 1)
    export_hf(policy, tokenizer, ctx)

    with ctx.timed("evaluate"):
        after, rows = module.evaluate(test_prompts, tag="ppo", greedy=cfg.eval.greedy,
                                      samples_per_prompt=cfg.eval.samples_per_prompt, batch_size=cfg.eval.batch_size)
        # the validation prompts, sampled as the test prompts are: what a tuning sweep selects on
        validated = module.evaluate(task.val_prompts(), tag="val", greedy=False,
                                    samples_per_prompt=cfg.eval.samples_per_prompt,
                                    batch_size=cfg.eval.batch_size)[0] if cfg.eval.validation else {}
    write_jsonl(ctx.dir / "samples.jsonl", before_rows + rows)
    write_json(ctx.dir / "metrics.json", after)
    title = (f"PPO ({ppo_label(cfg.ppo.reward, cfg.ppo.advantage)}, n={cfg.ppo.samples_per_prompt}, "
             f"rm={reward_model.mode}, anchor={module.anchor_name if module.anchor else '-'})")
    print_table(f"{title}: held-out test prompts (n={len(test_prompts)})",
                transpose({"sft": {m: before.get(m) for m in table_metrics(task)},
                           "ppo": {m: after.get(m) for m in table_metrics(task)}}))
    metrics = {**after, **{f"sft/{k}": v for k, v in before.items()}, **{f"val/{k}": v for k, v in validated.items()},
               "rl_prompts": float(len(prompts)),
               **{k: v for k, v in task.pair_metrics().items() if k.startswith("rl_prompts/")},
               "nonfinite_skipped": float(module.guard.skipped),
               "judge_rows_per_iteration": module.judge_rows_per_iteration(),
               **module.run_summary(),
               "local_param_fraction": module.local_param_fraction,
               "trainable_param_fraction": trainable_fraction(policy)}
    finish_loggers(trainer, metrics, tables={"samples/sft_vs_ppo": side_by_side(before_rows, rows)},
                   max_table_rows=cfg.logger.table_rows)
    return metrics


def side_by_side(sft_rows: List[dict], ppo_rows: List[dict]) -> List[dict]:
    """One row per held-out sample: the SFT and PPO responses to the same prompt (same eval order), for W&B."""
    return [{"mode": s["mode"], "prompt": s["prompt"], "anchor": p["anchor"], "sft": s["response"],
             "sft_gold": s["gold"], "ppo": p["response"], "ppo_gold": p["gold"], "ppo_reward": p["reward"],
             "ppo_kl": p["kl"]} for s, p in zip(sft_rows, ppo_rows)]


@STAGES.register("ppo")
def ppo_command(cfg: DictConfig):
    """PPO on the chosen reward (ppo=standard: the RM's scalar; ppo=pairwise: P(beats the anchor))."""
    return run_artifact_stage(cfg, "ppo")
