"""Held-out evaluation of a policy on a task's prompts: sampled (and greedy) responses, their length, and the
gold score per prompt group where the task has a gold judge."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

from omegaconf import DictConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pairwise_rl.data.records import Prompt
from pairwise_rl.files import write_json, write_jsonl
from pairwise_rl.models.generation import policy_samples
from pairwise_rl.tasks.base import Task

def repeat_for_sampling(prompts: Sequence, samples_per_prompt: int) -> List:
    """Each prompt k times in a row: the sampled gold is then a mean over k samples per prompt (less noise)."""
    return [p for p in prompts for _ in range(samples_per_prompt)]


def evaluate_policy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt],
                    task: Task, generation: DictConfig, max_prompt_tokens: int, out_dir: str | Path | None = None,
                    greedy: bool = True, tag: str = "policy", samples_per_prompt: int = 1,
                    batch_size: int = 512) -> Dict[str, float]:
    """Gold score (where the task has one) and length of sampled (and greedy) responses; writes samples.jsonl and
    metrics.json when out_dir is given.

    The sampled score is the headline: it is the expected gold of the policy RLHF actually optimises.
    """
    modes = {"sampled": False, **({"greedy": True} if greedy else {})}
    metrics: Dict[str, float] = {}
    rows: List[dict] = []
    for mode, is_greedy in modes.items():
        shown = list(prompts) if is_greedy else repeat_for_sampling(prompts, samples_per_prompt)
        texts = [p.prompt for p in shown]
        responses = policy_samples(model, tokenizer, texts, generation, max_prompt_tokens, is_greedy, batch_size)
        golds = [task.gold.score(p, r) for p, r in zip(texts, responses)] if task.gold else [None] * len(texts)
        if task.gold:
            metrics.update({f"gold_{mode}/{group}": v for group, v in task.by_group(texts, golds).items()})
        metrics[f"response_chars_{mode}"] = sum(len(r) for r in responses) / max(len(responses), 1)
        rows.extend({"task": p.task, "kind": task.group_of(p.prompt), "mode": mode, "model": tag,
                     "prompt": p.prompt, "response": r, "reference": p.reference, "gold": g}
                    for p, r, g in zip(shown, responses, golds))
    if out_dir is not None:
        write_jsonl(Path(out_dir) / "samples.jsonl", rows)
        write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics
