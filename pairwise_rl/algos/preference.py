"""Reward-model math: the Bradley-Terry loss and the generative pairwise verdict.

Generative pairwise RM (Pairwise-RL): the judge reads "prompt, A, B" and predicts a verdict token. With verdict
logits (l_A, l_B) at the verdict position,

    P(A beats B) = softmax(l_A, l_B)[0] = sigmoid(l_A - l_B).

A judge may prefer a position regardless of content; both presentation orders are combined (`ppo.order_average`).
With m1 = l_A - l_B when y1 is shown as A and m2 when y2 is:

    probability  p(y1 beats y2) = 1/2 * [sigmoid(m1) + 1 - sigmoid(m2)]       (the paper's average)
    log_odds     p(y1 beats y2) = sigmoid((m1 - m2) / 2)                        (the orders' log-odds averaged)

Both are exactly 0.5 for identical responses and agree on which response wins (each is > 1/2 iff m1 > m2), so an
RM's accuracy is the same under both. They differ in scale: a position bias b adds to both margins (m1 = d + b,
m2 = -d + b); log_odds cancels it exactly (sigmoid(d)), while the probability average squeezes the spread, e.g. by
about 2.4x near d = 0 at b = 2.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from pairwise_rl.registry import Registry


def bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: float = 0.0,
            target: torch.Tensor | None = None) -> torch.Tensor:
    """-log sigmoid(d), d = r_chosen - r_rejected - margin, averaged over pairs.

    With soft labels, target q = P(chosen preferred) per pair: the cross-entropy against (q, 1 - q),
    -[q log sigmoid(d) + (1 - q) log sigmoid(-d)], which is the hard loss where q = 1."""
    d = r_chosen - r_rejected - margin
    if target is None:
        return -F.logsigmoid(d).mean()
    target = target.to(d)
    return -(target * F.logsigmoid(d) + (1 - target) * F.logsigmoid(-d)).mean()


def bt_probability(r_1: torch.Tensor, r_2: torch.Tensor) -> torch.Tensor:
    """P(y1 beats y2) under Bradley-Terry: sigmoid(r_1 - r_2)."""
    return torch.sigmoid(r_1 - r_2)


def verdict_loss(verdict_position_logits: torch.Tensor, target_ids: torch.Tensor,
                 other_ids: torch.Tensor | None = None, target_prob: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token cross-entropy at the verdict position: logits (B, V) over the full vocabulary, targets (B,).

    With soft labels, the target distribution puts target_prob on the target verdict and the rest on the other
    verdict token: -[q log p(target) + (1 - q) log p(other)], the hard loss where q = 1."""
    if target_prob is None:
        return F.cross_entropy(verdict_position_logits.float(), target_ids)
    log_p = verdict_position_logits.float().log_softmax(-1)
    q = target_prob.to(log_p)
    picked = log_p.gather(-1, target_ids[:, None]).squeeze(-1)
    other = log_p.gather(-1, other_ids[:, None]).squeeze(-1)
    return -(q * picked + (1 - q) * other).mean()


def verdict_probability(logit_a: torch.Tensor, logit_b: torch.Tensor) -> torch.Tensor:
    """P(A wins): the softmax over the two verdict-token logits, written as a sigmoid of their difference."""
    return torch.sigmoid(logit_a.float() - logit_b.float())


def both_orders_probability(p_a_wins_y1_first: torch.Tensor, p_a_wins_y2_first: torch.Tensor) -> torch.Tensor:
    """p(y1 beats y2) averaged over both presentation orders.

    Written as 0.5 + (p1 - p2) / 2 rather than (p1 + 1 - p2) / 2: equal in exact arithmetic, but this form is
    exactly 0.5 in floating point whenever both orders give the same P(A wins) (identical responses).
    """
    return 0.5 + 0.5 * (p_a_wins_y1_first - p_a_wins_y2_first)


def both_orders_log_odds(margin_y1_first: torch.Tensor, margin_y2_first: torch.Tensor) -> torch.Tensor:
    """p(y1 beats y2) = sigmoid of the mean of the two orders' log-odds for y1: (m1 + (-m2)) / 2."""
    return torch.sigmoid(0.5 * (margin_y1_first.float() - margin_y2_first.float()))


# ppo.order_average: (verdict margin with y1 as A, with y2 as A) -> p(y1 beats y2).
ORDER_AVERAGES: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry("order average")
ORDER_AVERAGES.register("probability")(
    lambda m1, m2: both_orders_probability(torch.sigmoid(m1.float()), torch.sigmoid(m2.float())))
ORDER_AVERAGES.register("log_odds")(both_orders_log_odds)


def log_odds(p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """logit(p), clamped so a saturated judge gives a large finite value instead of inf."""
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)
