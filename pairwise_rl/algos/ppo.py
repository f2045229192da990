"""PPO for language models as pure tensor functions over (batch, response_length) tensors and a response mask.

Conventions: `mask` is 1 on response tokens (up to and including eos) and 0 on right padding. Per-token
quantities at padding positions are ignored by every function here.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import torch

from pairwise_rl.checks import check


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: Optional[int] = None) -> torch.Tensor:
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: Optional[int] = None) -> torch.Tensor:
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    n = mask.sum()
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8,
                  sum_over_ranks: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """(x - mean) / std over the masked entries; with shift_mean=False the mean is added back (scale only).

    `sum_over_ranks` (data-parallel runs) sums a tensor over the ranks, so the mean and variance are those of the
    global batch and every rank whitens the same way a single process would.
    """
    total = sum_over_ranks or (lambda t: t)
    n = total(mask.sum())
    mean = total((x * mask).sum()) / n.clamp(min=1)
    var = total(((x - mean) ** 2 * mask).sum()) / n.clamp(min=1)
    if n > 1:
        var = var * n / (n - 1)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each response; returns (advantages, returns = advantages + values).

    delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1}, with V and A zero past the end
    of the response (the episode ends at eos).
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip_ratio: float, dual_clip: Optional[float] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Clipped surrogate objective (token mean), optionally with dual clip (Ye et al. 2020) for A < 0.

    loss_t = max(-A r, -A clip(r, 1-eps, 1+eps));  dual clip: for A < 0, min(loss_t, -A * c).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
    losses = torch.maximum(unclipped, clipped)
    stats = {"clipfrac": masked_mean((clipped > unclipped).float(), mask)}
    if dual_clip is not None:
        capped = torch.minimum(losses, -advantages * dual_clip)
        stats["dual_clipfrac"] = masked_mean(((advantages < 0) & (capped < losses)).float(), mask)
        losses = torch.where(advantages < 0, capped, losses)
    stats["approx_kl"] = masked_mean(0.5 * log_ratio ** 2, mask).detach()
    stats["clipfrac"] = stats["clipfrac"].detach()
    # How far the importance ratio is from 1: before a minibatch's first update it should be 1 exactly, and what
    # it is instead measures how far the rollout's old logprobs disagree numerically with the update's (bf16).
    deviation = (ratio.detach() - 1.0).abs()
    stats["ratio_abs_dev"] = masked_mean(deviation, mask)
    stats["ratio_max_dev"] = (deviation * mask).max() if mask.any() else deviation.new_zeros(())
    return masked_mean(losses, mask), stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """0.5 * max((V - R)^2, (V_clipped - R)^2), V_clipped = V_old + clip(V - V_old, -c, c); token mean."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    unclipped_loss, clipped_loss = (values - returns) ** 2, (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_loss, clipped_loss), mask)
    return loss, {"vf_clipfrac": masked_mean((clipped_loss > unclipped_loss).float(), mask).detach()}


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under logits: (B, T, V), (B, T) -> (B, T)."""
    return torch.gather(logits.float().log_softmax(-1), -1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution at each position: logsumexp(l) - sum softmax(l) * l."""
    logits = logits.float()
    return torch.logsumexp(logits, -1) - (logits.softmax(-1) * logits).sum(-1)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - Var[R - V] / Var[R]: 1 is a perfect critic, 0 a constant one, negative worse than constant."""
    return 1.0 - masked_var(returns - values, mask) / masked_var(returns, mask).clamp(min=1e-8)


def kl_shaped_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token rewards: -beta * kl_t at every response token, plus the sequence score at its last token."""
    rewards = -kl_coef * kl * mask
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(scores)), last] += scores.to(rewards.dtype)
    return rewards


class FixedKLController:
    def __init__(self, coef: float):
        self.value = coef

    def update(self, current_kl: float, n_samples: int) -> None:
        pass

    def state_dict(self) -> Dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: Dict[str, float]) -> None:
        self.value = state["value"]


KL_STEP_CLIP = 0.2  # Ziegler et al.'s clip of the proportional error
KL_REACH = 100.0    # horizon=auto: beta can move by this factor, either way, within half of the run's iterations
KL_MAX_STEP = 0.5   # horizon=auto never lets one update move beta by more than +-50% (short runs would ask more)


def auto_horizon(samples_per_iteration: int, iterations: int, reach: float = KL_REACH) -> float:
    """The controller horizon (in samples) at which `iterations / 2` updates at the clipped error move beta by
    `reach` downwards: (1 - 0.2 n / h) ** (I / 2) = 1 / reach  =>  h = 0.2 n / (1 - reach ** (-2 / I)), with one
    step at most 50%.

    A fixed horizon ties how far beta can move to the rollout size: at Ziegler's horizon of 10,000 samples, or even
    100, a run of 40 iterations of 16 samples can lower beta only to 0.27x its start, so an arm whose reward is
    small against beta * KL never reaches its target. Upwards the same horizon moves beta by (1 + 0.2 n / h) ** (I/2),
    less than `reach` but more than enough: e.g. 16 samples x 40 iterations gives h = 15.5, steps of +-21%."""
    halves = max(iterations / 2.0, 1.0)
    step = min(1.0 - reach ** (-1.0 / halves), KL_MAX_STEP)
    return KL_STEP_CLIP * samples_per_iteration / step


def kl_horizon(ppo) -> float:
    """ppo.kl.horizon resolved: a number as given, `auto` from the run's rollout size and length."""
    if ppo.kl.horizon != "auto":
        return float(ppo.kl.horizon)
    return auto_horizon(ppo.rollout_batch_size * ppo.samples_per_prompt, ppo.iterations)


def check_horizon(cfg) -> None:
    """ppo.kl.horizon: auto, or a number large enough that one clipped update cannot take beta to zero."""
    value = cfg.ppo.kl.horizon
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    check(value == "auto" or (number and value > 0), "ppo.kl.horizon", f"must be auto or a number > 0, got {value!r}")
    if number:
        n = cfg.ppo.rollout_batch_size * cfg.ppo.samples_per_prompt
        check(KL_STEP_CLIP * n / value < 1.0, "ppo.kl.horizon", f"{value} is below 0.2 x the samples per iteration "
              f"({n}): one update at the clipped error would take beta to zero or below; use >= {KL_STEP_CLIP * n:g} "
              "or auto")


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. (2019): beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n_samples / horizon."""

    def __init__(self, coef: float, target: float, horizon: int):
        super().__init__(coef)
        self.target, self.horizon = target, horizon

    def update(self, current_kl: float, n_samples: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -KL_STEP_CLIP), KL_STEP_CLIP)
        self.value *= 1.0 + error * n_samples / self.horizon
