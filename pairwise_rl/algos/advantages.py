"""Advantage estimators: how each sampled response's reward becomes the per-token signal of the policy gradient.

Rows of a rollout come in groups of `group_size` samples of the same prompt, contiguous ([p0, p0, p1, p1, ...]).

    gae           a learned critic V: per-token rewards (the sequence reward at the last token, KL-shaped when the
                  KL is in the reward) and TD residuals, A_t = sum_k (gamma lam)^k delta_{t+k} (Schulman et al. 2016)
    grpo          A_i = (R_i - mean_group R) / (std_group R + eps), std optional (Shao et al. 2024, DeepSeekMath;
                  without the std it is Dr. GRPO, Liu et al. 2025)
    rloo          A_i = R_i - mean_{j != i} R_j, the leave-one-out baseline (Kool et al. 2019; Ahmadian et al. 2024)
    reinforce_pp  A_t = sum_{k >= t} gamma^(k-t) r_k over KL-shaped per-token rewards, whitened over the global
                  batch (Hu 2025, REINFORCE++)

R_i is the sequence reward minus kl_coef times the response's summed KL when the KL is in the reward (the RLOO
paper's and TRL's choice), or the bare reward when the KL is a loss term (GRPO's). The critic-free estimators spread
one advantage over every token of a response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
from omegaconf import DictConfig

from pairwise_rl.algos.ppo import gae, kl_shaped_rewards, masked_whiten
from pairwise_rl.checks import check, fraction, one_of, positive
from pairwise_rl.registry import Registry

GRPO_EPS = 1e-4  # TRL GRPOTrainer's constant: (r - mean) / (std + 1e-4)


@dataclass
class AdvantageInputs:
    scores: torch.Tensor                    # (B,) sequence reward, before any KL
    kl: torch.Tensor                        # (B, T) per-token KL estimate to the reference
    mask: torch.Tensor                      # (B, T) 1 on response tokens
    kl_coef: float                          # the KL's weight in the reward (0 when the KL is a loss term)
    group_size: int = 1
    values: Optional[torch.Tensor] = None   # (B, T) critic values (gae only)
    gamma: float = 1.0
    lam: float = 0.95
    whiten: bool = True                     # gae: normalise advantages over the batch
    scale_by_std: bool = True               # grpo: divide by the group's standard deviation
    sum_over_ranks: Optional[Callable[[torch.Tensor], torch.Tensor]] = None  # batch statistics over every rank


@dataclass(frozen=True)
class Estimator:
    compute: Callable[[AdvantageInputs], Tuple[torch.Tensor, Optional[torch.Tensor]]]  # -> (advantages, returns)
    needs_critic: bool
    min_group_size: int  # the smallest group the estimator is defined on

    def check_config(self, cfg: DictConfig) -> None:
        """Its group size, and the critic's keys where it learns one."""
        n = cfg.ppo.samples_per_prompt
        check(n >= self.min_group_size, "ppo.advantage", f"{cfg.ppo.advantage} compares the samples of a prompt with "
              f"each other: it needs ppo.samples_per_prompt >= {self.min_group_size}, got {n}")
        if self.needs_critic:
            positive(cfg, "ppo.critic_lr", "ppo.value_clip")
            one_of(cfg, "ppo.critic_init", ["rm", "sft"])
            fraction(cfg, "ppo.lam")


ADVANTAGE_ESTIMATORS: Registry[Estimator] = Registry("advantage estimator")


def estimator(name: str, needs_critic: bool, min_group_size: int):
    def decorator(compute):
        ADVANTAGE_ESTIMATORS.register(name)(Estimator(compute, needs_critic, min_group_size))
        return compute

    return decorator


def sequence_rewards(x: AdvantageInputs) -> torch.Tensor:
    """R_i = score_i - kl_coef * sum_t kl_t: one number per response."""
    return x.scores.float() - x.kl_coef * (x.kl * x.mask).sum(-1)


def grouped(values: torch.Tensor, group_size: int) -> torch.Tensor:
    """(B,) -> (B / n, n), rows of one prompt together; refuses a batch that is not whole groups."""
    if values.numel() % group_size:
        raise ValueError(f"{values.numel()} rollout rows are not whole groups of ppo.samples_per_prompt={group_size}")
    return values.view(-1, group_size)


def grpo_advantages(rewards: torch.Tensor, group_size: int, scale_by_std: bool = True,
                    eps: float = GRPO_EPS) -> torch.Tensor:
    """(R - group mean) / (group std + eps), std unbiased as torch.std (TRL and verl agree); (B,) -> (B,)."""
    groups = grouped(rewards, group_size)
    centred = groups - groups.mean(-1, keepdim=True)
    if scale_by_std:
        centred = centred / (groups.std(-1, keepdim=True) + eps)
    return centred.reshape(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """R_i minus the mean of the other n - 1 rewards of its group; (B,) -> (B,)."""
    groups = grouped(rewards, group_size)
    baseline = (groups.sum(-1, keepdim=True) - groups) / (group_size - 1)
    return (groups - baseline).reshape(-1)


def spread(per_sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One advantage per response onto each of its tokens."""
    return per_sequence.unsqueeze(-1).to(mask.dtype) * mask


def returns_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = r_t + gamma * G_{t+1}, zero past the end of each response."""
    rewards = rewards * mask
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        out[:, t] = running
    return out * mask


@estimator("gae", needs_critic=True, min_group_size=1)
def _gae(x: AdvantageInputs) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    rewards = kl_shaped_rewards(x.scores, x.kl, x.mask, x.kl_coef)
    advantages, returns = gae(rewards, x.values, x.mask, x.gamma, x.lam)
    if x.whiten:
        advantages = masked_whiten(advantages, x.mask, sum_over_ranks=x.sum_over_ranks)
    return advantages, returns


@estimator("grpo", needs_critic=False, min_group_size=2)
def _grpo(x: AdvantageInputs) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    return spread(grpo_advantages(sequence_rewards(x), x.group_size, x.scale_by_std), x.mask), None


@estimator("rloo", needs_critic=False, min_group_size=2)
def _rloo(x: AdvantageInputs) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    return spread(rloo_advantages(sequence_rewards(x), x.group_size), x.mask), None


@estimator("reinforce_pp", needs_critic=False, min_group_size=1)
def _reinforce_pp(x: AdvantageInputs) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    returns = returns_to_go(kl_shaped_rewards(x.scores, x.kl, x.mask, x.kl_coef), x.mask, x.gamma)
    return masked_whiten(returns, x.mask, sum_over_ranks=x.sum_over_ranks), None


def compute_advantages(name: str, inputs: AdvantageInputs) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    return ADVANTAGE_ESTIMATORS.get(name).compute(inputs)
