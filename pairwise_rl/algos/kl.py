"""Per-token KL estimators between the policy and the frozen reference (Schulman, "Approximating KL divergence").

With log-ratio r = log pi(x) - log pi_ref(x) for x sampled from pi:
    k1 = r                      unbiased, high variance, can be negative per token
    k2 = r^2 / 2                biased, low variance, always >= 0
    k3 = (exp(-r) - 1) + r      unbiased, low variance, always >= 0
"""

from __future__ import annotations

from typing import Callable

import torch

from pairwise_rl.registry import Registry

KL_ESTIMATORS: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry("kl estimator")


@KL_ESTIMATORS.register("k1")
def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    return logprobs - ref_logprobs


@KL_ESTIMATORS.register("k2")
def kl_k2(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    return 0.5 * (logprobs - ref_logprobs) ** 2


@KL_ESTIMATORS.register("k3")
def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    log_ratio = logprobs - ref_logprobs
    return torch.expm1(-log_ratio) + log_ratio


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    return KL_ESTIMATORS.get(estimator)(logprobs, ref_logprobs)
