"""Reward transforms (`ppo.reward_transform`): what PPO optimises, made from the sequence reward a reward form gave.

    none          r                                  the reward as the form gives it (p - 0.5 for a centred
                                                     probability, a BT score, a generative judge's log-odds)
    logit         log(p / (1 - p))                   the log-odds of a probability reward p (anchor, group): it
                                                     undoes the sigmoid's squashing, so a judge that is sure moves
                                                     the reward by nats, not by at most 0.5 (Llama 2 inverts the
                                                     sigmoid of its safety RM the same way); 0 at p = 1/2, so no
                                                     centring is needed
    whiten        (r - mean) / std                   over the rollout's global batch: every arm's reward then has
                                                     unit spread, whatever its scale (TRL and OpenRLHF offer reward
                                                     normalisation); the KL penalty stays in nats
    logit_whiten  whiten(logit(p))                   both

`logit` needs a probability: ppo.reward=anchor | group. A scalar reward is already unbounded (checked at config
time). Whitening is per batch, not a running estimate: it keeps no state across iterations (nothing to
checkpoint), at the price of a noisier scale with small rollouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from pairwise_rl.algos.ppo import masked_whiten
from pairwise_rl.algos.preference import log_odds
from pairwise_rl.registry import Registry

SumOverRanks = Optional[Callable[[torch.Tensor], torch.Tensor]]


@dataclass(frozen=True)
class RewardTransform:
    apply: Callable[[torch.Tensor, Optional[torch.Tensor], SumOverRanks], torch.Tensor]  # (reward, p, sum) -> reward
    needs_probability: bool


REWARD_TRANSFORMS: Registry[RewardTransform] = Registry("reward transform")


def whiten_rewards(rewards: torch.Tensor, sum_over_ranks: SumOverRanks = None) -> torch.Tensor:
    """(r - mean) / std over the global batch, as the advantages are whitened (algos/ppo.masked_whiten: unbiased
    std, eps inside the root, so equal rewards give zeros; `sum_over_ranks` makes every rank whiten as one process
    with the whole batch would)."""
    r = rewards.float()
    return masked_whiten(r, torch.ones_like(r), sum_over_ranks=sum_over_ranks)


def _probability(p: Optional[torch.Tensor]) -> torch.Tensor:
    if p is None:
        raise ValueError("this reward transform needs a probability reward (ppo.reward=anchor | group)")
    return p.float()


REWARD_TRANSFORMS.register("none")(RewardTransform(lambda r, p, total: r, needs_probability=False))
REWARD_TRANSFORMS.register("logit")(RewardTransform(lambda r, p, total: log_odds(_probability(p)),
                                                    needs_probability=True))
REWARD_TRANSFORMS.register("whiten")(RewardTransform(lambda r, p, total: whiten_rewards(r, total),
                                                     needs_probability=False))
REWARD_TRANSFORMS.register("logit_whiten")(RewardTransform(
    lambda r, p, total: whiten_rewards(log_odds(_probability(p)), total), needs_probability=True))


def transform_reward(name: str, reward: torch.Tensor, probability: Optional[torch.Tensor],
                     sum_over_ranks: SumOverRanks = None) -> torch.Tensor:
    return REWARD_TRANSFORMS.get(name).apply(reward, probability, sum_over_ranks)
