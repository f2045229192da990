"""Anchor strategies for pairwise PPO: what the policy's response is compared against, per prompt.

    reference      the prompt's demonstration (or the dataset's chosen response)
    sft_greedy     the frozen SFT policy's greedy answer, computed once per prompt and cached
    policy_greedy  the current policy's greedy answer, regenerated every rollout (a moving, self-play anchor)
    best_of_n      the best of n SFT samples according to the RM, computed once per prompt and cached; how "best"
                   is decided is ppo.best_of_n_by (BEST_OF_N_SELECTIONS below): by score or by a round robin

Cached anchors are part of the PPO checkpoint, so a resumed run compares against exactly the same anchors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pairwise_rl.checks import check, one_of, positive
from pairwise_rl.data.records import Prompt
from pairwise_rl.models.generation import generate
from pairwise_rl.registry import Registry
from pairwise_rl.rewards.base import RewardModel
from pairwise_rl.rewards.group_matches import GroupScheme, play_group


@dataclass
class AnchorContext:
    """What a strategy may use. `seed` is the per-rollout seed (sampling anchors are reproducible)."""

    policy: PreTrainedModel
    reference_policy: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    reward_model: RewardModel
    max_new_tokens: int
    max_prompt_tokens: int
    temperature: float
    best_of_n: int
    seed: int
    best_of_n_by: str = "auto"  # a BEST_OF_N_SELECTIONS name, or auto: score for a scalar RM, else tournament


class AnchorStrategy:
    cached = False  # cached strategies compute an anchor once per prompt

    def __init__(self) -> None:
        self.cache: Dict[str, str] = {}

    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        """Reject a config this anchor cannot serve (config.validate calls the selected anchor's, for the run and
        for each pipeline setup's own config)."""

    def compute(self, prompts: List[Prompt], ctx: AnchorContext) -> List[str]:
        raise NotImplementedError

    def anchors(self, prompts: Sequence[Prompt], ctx: AnchorContext) -> List[str]:
        if not self.cached:
            return self.compute(list(prompts), ctx)
        missing = list({p.prompt: p for p in prompts if p.prompt not in self.cache}.values())
        if missing:
            self.cache.update(zip([p.prompt for p in missing], self.compute(missing, ctx)))
        return [self.cache[p.prompt] for p in prompts]

    def state_dict(self) -> Dict[str, Dict[str, str]]:
        return {"cache": dict(self.cache)}

    def load_state_dict(self, state: Dict[str, Dict[str, str]]) -> None:
        self.cache = dict(state["cache"])


ANCHORS: Registry[Callable[[], AnchorStrategy]] = Registry("anchor strategy")


def _greedy(model: PreTrainedModel, prompts: List[Prompt], ctx: AnchorContext) -> List[str]:
    return generate(model, ctx.tokenizer, [p.prompt for p in prompts], max_new_tokens=ctx.max_new_tokens,
                    max_prompt_tokens=ctx.max_prompt_tokens, greedy=True).texts


@ANCHORS.register("reference")
class ReferenceAnchor(AnchorStrategy):
    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        rl = cfg.data.rl_prompts
        if cfg.data.task != "digits" and cfg.stage in ("ppo", "pipeline") and rl.path is not None:
            check(rl.reference is not None, "ppo.anchor",
                  f"ppo.anchor=reference needs a reference response per prompt, but data.rl_prompts.path="
                  f"{rl.path} is read without one; set data.rl_prompts.reference=<field> or use sft_greedy, "
                  "policy_greedy or best_of_n")
    def compute(self, prompts: List[Prompt], ctx: AnchorContext) -> List[str]:
        missing = [p.prompt for p in prompts if p.reference is None]
        if missing:
            raise ValueError(f"ppo.anchor=reference needs a reference response for every prompt; "
                             f"{len(missing)} have none (first: {missing[0]!r})")
        return [p.reference for p in prompts]


@ANCHORS.register("sft_greedy")
class SFTGreedyAnchor(AnchorStrategy):
    cached = True

    def compute(self, prompts: List[Prompt], ctx: AnchorContext) -> List[str]:
        return _greedy(ctx.reference_policy, prompts, ctx)


@ANCHORS.register("policy_greedy")
class PolicyGreedyAnchor(AnchorStrategy):
    def compute(self, prompts: List[Prompt], ctx: AnchorContext) -> List[str]:
        return _greedy(ctx.policy, prompts, ctx)


# How best_of_n ranks the n SFT samples of each prompt: (rows, samples, ctx) -> (prompts, n) strengths, where
# row i * n + j holds prompt i and samples[i * n + j] is its sample j.
Selection = Callable[[List[str], List[str], AnchorContext], torch.Tensor]
BEST_OF_N_SELECTIONS: Registry[Selection] = Registry("best_of_n selection")


@BEST_OF_N_SELECTIONS.register("score")
def _by_score(rows: List[str], samples: List[str], ctx: AnchorContext) -> torch.Tensor:
    """A scalar per sample: the RM's score (BT, gold), or for a judge without one the P(sample beats the frozen SFT
    policy's greedy answer) -- the same scalar ppo.reward=scalar gives a generative RM. n judge calls per prompt."""
    n = ctx.best_of_n
    if ctx.reward_model.has_score:
        return ctx.reward_model.score(rows, samples).view(-1, n)
    greedy = generate(ctx.reference_policy, ctx.tokenizer, rows[::n], max_new_tokens=ctx.max_new_tokens,
                      max_prompt_tokens=ctx.max_prompt_tokens, greedy=True).texts
    return ctx.reward_model.compare(rows, samples, [g for g in greedy for _ in range(n)]).view(-1, n)


@BEST_OF_N_SELECTIONS.register("tournament")
def _by_tournament(rows: List[str], samples: List[str], ctx: AnchorContext) -> torch.Tensor:
    """Each sample's mean win probability against the other n-1 (a round robin, every unordered pair judged once:
    rewards/group_matches.py's all_pairs with mean_win). Needs no absolute score: the pairwise judge's own ranking."""
    n = ctx.best_of_n
    return play_group(ctx.reward_model, rows, samples, n, GroupScheme(), ctx.seed)[0].view(-1, n)


def best_of_n_selection(name: str, reward_model: RewardModel) -> Selection:
    """ppo.best_of_n_by resolved: auto is score for an RM with a scalar score, tournament for one without."""
    if name == "auto":
        name = "score" if reward_model.has_score else "tournament"
    return BEST_OF_N_SELECTIONS.get(name)


@ANCHORS.register("best_of_n")
class BestOfNAnchor(AnchorStrategy):
    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        positive(cfg, "ppo.best_of_n")
        one_of(cfg, "ppo.best_of_n_by", ["auto", *BEST_OF_N_SELECTIONS.names()])
    """The best of n SFT samples per prompt, ranked by ppo.best_of_n_by (score | tournament | auto)."""

    cached = True

    def compute(self, prompts: List[Prompt], ctx: AnchorContext) -> List[str]:
        n, texts = ctx.best_of_n, [p.prompt for p in prompts]
        repeated = [t for t in texts for _ in range(n)]  # row i*n + j is sample j of prompt i
        samples = generate(ctx.reference_policy, ctx.tokenizer, repeated, max_new_tokens=ctx.max_new_tokens,
                           max_prompt_tokens=ctx.max_prompt_tokens, temperature=ctx.temperature,
                           generator_seed=ctx.seed).texts
        select = best_of_n_selection(ctx.best_of_n_by, ctx.reward_model)
        best = select(repeated, samples, ctx).argmax(-1).tolist()
        return [samples[i * n + b] for i, b in enumerate(best)]


def build_anchor(name: str) -> AnchorStrategy:
    return ANCHORS.get(name)()
