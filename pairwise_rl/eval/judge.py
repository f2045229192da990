"""The independent evaluation judge: something a policy was not trained against.

`judge.name` picks it:
  auto      the task's gold judge where it has one (digits), else gold_rm
  gold      the digits gold judge (compare = the annotator's probability, score = gold)
  gold_rm   an RM the pipeline trains once, with its own seed and budget (judge.seed, judge.max_steps), on the
            share of the training prompts (data.judge_fraction) whose pairs the proxy RMs never see: the
            synthetic-gold protocol of Gao et al. 2022 ("Scaling Laws for Reward Model Overoptimization")
  <path>    any RM: an artifact directory (rm-*/ or its hf/), a saved RM directory, or an HF model dir / hub id
            read as judge.mode

Judging a policy compares each held-out response with the SFT policy's response and with the prompt's reference
response (both orders for a pairwise judge, as RewardModel.compare does; a tie, p = 0.5 exactly, counts ½), and
reads the judge's score where it has one. Every number gets a 95% interval over prompts: a prompt's samples are
averaged first, so k samples of one prompt do not count as k independent observations.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from omegaconf import DictConfig

from pairwise_rl.eval.aggregate import mean_ci
from pairwise_rl.precision import frozen_dtype
from pairwise_rl.rewards.base import SPEC_FILE, RewardModel

BUILT_IN = ("gold", "gold_rm", "none")


def judge_kind(cfg: DictConfig) -> str:
    """gold | gold_rm | none | path."""
    name = cfg.judge.name
    if name == "auto":
        return "gold" if cfg.data.task == "digits" else "gold_rm"
    return name if name in BUILT_IN else "path"


def wins(p: torch.Tensor) -> torch.Tensor:
    """1 where the response wins, 0 where it loses, ½ on an exact tie (identical responses give p = 0.5)."""
    return (p > 0.5).float() + 0.5 * (p == 0.5).float()


def per_prompt_interval(prompts: Sequence[str], values: Sequence[float]) -> Dict[str, float]:
    """Mean over prompts of each prompt's mean value, with a 95% t-interval over prompts."""
    groups: "OrderedDict[str, List[float]]" = OrderedDict()
    for prompt, value in zip(prompts, values):
        groups.setdefault(prompt, []).append(float(value))
    return mean_ci([sum(v) / len(v) for v in groups.values()])


def _saved_rm_dir(path: Path) -> Optional[Path]:
    for candidate in (path, path / "hf"):
        if (candidate / SPEC_FILE).is_file():
            return candidate
    return None


def load_rm(path: str, mode: str, cfg: DictConfig) -> RewardModel:
    """A reward model from a path: an RM artifact directory (rm-*/ or its hf/) or a saved RM directory, whose
    reward_model.json names its mode; else a plain HF directory or hub id, read as `mode`."""
    from pairwise_rl.rewards import RM_MODES, load_reward_model

    saved = _saved_rm_dir(Path(path))
    if saved is not None:
        return load_reward_model(saved, frozen_dtype(cfg))
    judge_cls = RM_MODES.get(mode)
    return judge_cls.from_pretrained(path, dtype=frozen_dtype(cfg), **judge_cls.config_spec(cfg))


def load_judge(cfg: DictConfig, trained_dir: Optional[Path] = None) -> RewardModel:
    """The judge named by cfg.judge.name (`trained_dir`: the gold_rm artifact's hf/ directory)."""
    from pairwise_rl.rewards import RM_MODES, load_reward_model

    kind = judge_kind(cfg)
    if kind == "gold":
        judge_cls = RM_MODES.get("gold")
        return judge_cls(**judge_cls.config_spec(cfg))
    if kind == "gold_rm":
        judge = load_reward_model(trained_dir, frozen_dtype(cfg))
    else:
        judge = load_rm(cfg.judge.name, cfg.judge.mode, cfg)
    judge.batch_size = cfg.judge.batch_size
    judge.both_orders = True  # a pairwise judge always averages both presentation orders here
    return judge


def judge_responses(judge: RewardModel, prompts: Sequence[str], responses: Sequence[str],
                    sft_responses: Sequence[str], references: Sequence[Optional[str]],
                    skip_self: bool = False) -> Dict[str, List[float]]:
    """Per response: P(beats the SFT response), P(beats the reference) and the judge's score where defined.
    skip_self: the responses are the SFT responses, whose P(beats itself) is ½ by construction (not computed)."""
    if skip_self:
        out: Dict[str, List[float]] = {"p_vs_sft": [0.5] * len(responses)}
    else:
        out = {"p_vs_sft": judge.compare(prompts, responses, sft_responses).tolist()}
    if all(r is not None for r in references):
        out["p_vs_reference"] = judge.compare(prompts, responses, list(references)).tolist()
    if judge.has_score:
        out["judge_score"] = judge.score(list(prompts), list(responses)).tolist()
    return out


def summarise(prompts: Sequence[str], judged: Dict[str, List[float]], kl: Sequence[float],
              length: Sequence[float]) -> Dict[str, Dict[str, float]]:
    """{metric: mean_ci over prompts} for win rates (hard, ties ½), win probabilities, score, KL and length."""
    out = {}
    for name, values in judged.items():
        if name.startswith("p_vs_"):
            target = name[len("p_vs_"):]
            out[f"win_vs_{target}"] = per_prompt_interval(prompts, wins(torch.tensor(values)).tolist())
            out[f"win_prob_vs_{target}"] = per_prompt_interval(prompts, values)
        else:
            out[name] = per_prompt_interval(prompts, values)
    out["kl"] = per_prompt_interval(prompts, kl)
    out["length"] = per_prompt_interval(prompts, length)
    return out
