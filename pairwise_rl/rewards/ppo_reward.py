"""The sequence-level reward of each PPO variant, computed from any reward model through the one interface.

The 2x2 ablation, cell by cell:
    bt         + standard   r = score(y)
    bt         + pairwise   r = sigmoid(score(y) - score(anchor))           (= compare(y, anchor))
    generative + standard   r = log-odds of compare(y, sft_greedy anchor)   (an unbounded scalar, like a BT score)
    generative + pairwise   r = compare(y, anchor)                          (both orders averaged by default)
Pairwise rewards are centred to p - 0.5 by default. This separates the effect of the RM from the effect of the
bounded, anchored pairwise reward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from pairwise_rl.algos.preference import log_odds
from pairwise_rl.registry import Registry
from pairwise_rl.rewards.base import RewardModel


@dataclass
class SequenceReward:
    reward: torch.Tensor                      # what PPO optimises (before the KL penalty)
    win_prob: Optional[torch.Tensor] = None   # P(response beats anchor), when an anchor was used


@dataclass
class VariantSpec:
    needs_anchor: Callable[[RewardModel], bool]
    anchor_override: Callable[[RewardModel], Optional[str]]  # a fixed anchor this variant imposes, if any
    reward: Callable[..., SequenceReward]


PPO_VARIANTS: Registry[VariantSpec] = Registry("ppo variant")


def _standard(rm: RewardModel, prompts: Sequence[str], responses: Sequence[str], anchors: Optional[Sequence[str]],
              center: bool) -> SequenceReward:
    if rm.has_score:
        return SequenceReward(rm.score(prompts, responses))
    p = rm.compare(prompts, responses, anchors)
    return SequenceReward(log_odds(p), p)


def _pairwise(rm: RewardModel, prompts: Sequence[str], responses: Sequence[str], anchors: Optional[Sequence[str]],
              center: bool) -> SequenceReward:
    p = rm.compare(prompts, responses, anchors)
    return SequenceReward(p - 0.5 if center else p, p)


PPO_VARIANTS.register("standard")(VariantSpec(
    needs_anchor=lambda rm: not rm.has_score,
    anchor_override=lambda rm: None if rm.has_score else "sft_greedy",
    reward=_standard,
))
PPO_VARIANTS.register("pairwise")(VariantSpec(
    needs_anchor=lambda rm: True,
    anchor_override=lambda rm: None,
    reward=_pairwise,
))
