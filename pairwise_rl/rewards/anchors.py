"""Anchor strategies for pairwise PPO: what the policy's response is compared against, per prompt.

    reference      the prompt's demonstration (or the dataset's chosen response)
    sft_greedy     the frozen SFT policy's greedy answer, computed once per prompt and cached
    policy_greedy  the current policy's greedy answer, regenerated every rollout (a moving, self-play anchor)
    best_of_n      the best of n SFT samples according to the RM, computed once per prompt and cached

Cached anchors are part of the PPO checkpoint, so a resumed run compares against exactly the same anchors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pairwise_rl.data.records import Prompt
from pairwise_rl.models.generation import generate
from pairwise_rl.registry import Registry
from pairwise_rl.rewards.base import RewardModel


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


class AnchorStrategy:
    cached = False  # cached strategies compute an anchor once per prompt

    def __init__(self) -> None:
        self.cache: Dict[str, str] = {}

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


@ANCHORS.register("best_of_n")
class BestOfNAnchor(AnchorStrategy):
    """Best of n SFT samples: by score for a scalar RM; for a pairwise RM, the sample with the highest mean win
    probability against the other n-1 (a round robin, n(n-1) comparisons per prompt)."""

    cached = True

    def compute(self, prompts: List[Prompt], ctx: AnchorContext) -> List[str]:
        n, texts = ctx.best_of_n, [p.prompt for p in prompts]
        repeated = [t for t in texts for _ in range(n)]  # row i*n + j is sample j of prompt i
        samples = generate(ctx.reference_policy, ctx.tokenizer, repeated, max_new_tokens=ctx.max_new_tokens,
                           max_prompt_tokens=ctx.max_prompt_tokens, temperature=ctx.temperature,
                           generator_seed=ctx.seed).texts
        if ctx.reward_model.has_score:
            strength = ctx.reward_model.score(repeated, samples).view(len(texts), n)
        else:
            left = [(i, j, k) for i in range(len(texts)) for j in range(n) for k in range(n) if j != k]
            p = ctx.reward_model.compare([texts[i] for i, _, _ in left], [samples[i * n + j] for i, j, _ in left],
                                         [samples[i * n + k] for i, _, k in left])
            wins = torch.zeros(len(texts), n)
            for (i, j, _), value in zip(left, p.tolist()):
                wins[i, j] += value
            strength = wins / max(n - 1, 1)
        best = strength.argmax(-1).tolist()
        return [samples[i * n + b] for i, b in enumerate(best)]


def build_anchor(name: str) -> AnchorStrategy:
    return ANCHORS.get(name)()
