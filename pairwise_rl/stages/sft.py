"""stage=sft: train the policy on the task's demonstrations, export it, evaluate it on held-out prompts.

With sft.enabled=false the configured model itself is the starting policy (an instruct model, say): the stage
exports it untrained and evaluates it, so every later stage reads the same kind of artifact.
"""

from __future__ import annotations

from typing import Dict, List

from omegaconf import DictConfig

from pairwise_rl.data.records import Prompt
from pairwise_rl.distributed import compute_device
from pairwise_rl.eval.policy import evaluate_policy
from pairwise_rl.eval.report import gold_column, print_gold_table, print_table, transpose
from pairwise_rl.models.factory import init_policy
from pairwise_rl.models.lora import apply_lora, trainable_fraction
from pairwise_rl.models.sampling import sampling_model
from pairwise_rl.modules.sft import SFTModule
from pairwise_rl.pipeline import StageContext, artifact_stage, keys_except
from pairwise_rl.stages.registry import STAGES
from pairwise_rl.stages.common import export_hf, run_artifact_stage, run_name
from pairwise_rl.tasks.base import Task, load_task
from pairwise_rl.training import build_trainer, finish_loggers, fit


def sft_keys(cfg: DictConfig) -> tuple:
    """What determines the SFT policy: all of `data` but the digits annotator's taus, which only label preference
    pairs. So an annotator sweep (experiments/annotators.yaml) trains one SFT policy per seed, not one per tau."""
    return ("seed", "model", *keys_except(cfg, "data", "data.digits.tau"), "sft", "generation", "eval")


@artifact_stage("sft", needs=(), keys=sft_keys)
def build_sft(cfg: DictConfig, ctx: StageContext) -> Dict[str, float]:
    task = load_task(cfg)
    model, tokenizer = init_policy(cfg.model, cfg.seed)
    model.to(compute_device(cfg.trainer))  # evaluation before fit runs where training will
    test_prompts = task.eval_prompts()

    def evaluate(tag: str, out_dir=None) -> Dict[str, float]:
        # bf16-mixed: sampled from a bf16 copy of the weights as they are now (models/sampling.py)
        return evaluate_policy(sampling_model(model, cfg), tokenizer, test_prompts, task, cfg.generation,
                               cfg.data.max_prompt_tokens, out_dir=out_dir, greedy=cfg.eval.greedy, tag=tag,
                               samples_per_prompt=cfg.eval.samples_per_prompt, batch_size=cfg.eval.batch_size)

    if not cfg.sft.enabled:  # the configured model is the starting policy
        with ctx.timed("evaluate"):
            after = evaluate("pretrained", ctx.dir)
        export_hf(model, tokenizer, ctx)
        _print_results(task, {"pretrained (sampled)": after}, cfg.eval.greedy)
        return {**after, "trained": 0.0}

    apply_lora(model, cfg.model.lora)
    demos = task.sft_demos()
    # The untrained model's score is the floor SFT must clear; it is deterministic from the seed.
    before = ctx.kept("evaluate untrained", lambda: evaluate("untrained"))
    module = SFTModule(model, tokenizer, demos, task.val_prompts(), task, cfg, cfg.seed)
    trainer = build_trainer(cfg, ctx.dir, stage="sft", run_name=run_name(cfg, ctx), val_every=cfg.sft.val_every,
                            checkpoint_every=cfg.sft.checkpoint_every,
                            gradient_clip_val=cfg.sft.max_grad_norm)
    with ctx.timed("train"):
        fit(trainer, module, ctx.dir)
    export_hf(model, tokenizer, ctx)

    with ctx.timed("evaluate"):
        after = evaluate("sft", ctx.dir)
    demo_gold = _demo_gold(task, demos)
    _print_results(task, {"untrained": before, **({"demonstrations": demo_gold} if demo_gold else {}),
                          "sft (sampled)": after}, cfg.eval.greedy)
    metrics = {**after, **{f"init/{k}": v for k, v in before.items()},
               **{f"demos/{k}": v for k, v in demo_gold.items()},
               "trained": 1.0, "demonstrations": float(len(demos)),
               "nonfinite_skipped": float(module.guard.skipped),
               "local_param_fraction": module.local_param_fraction,
               "trainable_param_fraction": trainable_fraction(model)}
    finish_loggers(trainer, metrics, tables={"samples/sft": ctx.dir / "samples.jsonl"},
                   max_table_rows=cfg.logger.table_rows)
    return metrics


def _print_results(task: Task, columns: Dict[str, Dict[str, float]], greedy: bool) -> None:
    """The gold table per prompt group where the task has a gold judge; response lengths otherwise."""
    title = "SFT: held-out test prompts"
    if task.gold is None:
        print_table(title, transpose({name: {k: v for k, v in m.items() if k.startswith("response_chars")}
                                      for name, m in columns.items()}))
        return
    shown = {name: gold_column(m) for name, m in columns.items()}
    last = list(columns)[-1]
    if greedy:
        shown[last.replace("sampled", "greedy")] = gold_column(columns[last], "greedy")
    print_gold_table(f"{title}: gold score", shown, task.groups)


def _demo_gold(task: Task, demos: List[Prompt]) -> Dict[str, float]:
    if task.gold is None:
        return {}
    scores = task.by_group([d.prompt for d in demos], [task.gold.score(d.prompt, d.reference) for d in demos])
    return {f"gold_sampled/{k}": v for k, v in scores.items()}


@STAGES.register("sft")
def sft_command(cfg: DictConfig):
    """Supervised fine-tuning on the task's demonstrations (the starting policy)."""
    return run_artifact_stage(cfg, "sft")
