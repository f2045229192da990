"""Reward-model math: the Bradley-Terry loss and the generative pairwise verdict.

Generative pairwise RM (Pairwise-RL): the judge reads "prompt, A, B" and predicts a verdict token. With verdict
logits (l_A, l_B) at the verdict position,

    P(A beats B) = softmax(l_A, l_B)[0] = sigmoid(l_A - l_B).

A judge may prefer a position regardless of content; averaging over both presentation orders removes that bias:

    p(y1 beats y2) = 1/2 * [P(A wins | y1 as A, y2 as B) + 1 - P(A wins | y2 as A, y1 as B)].

For identical responses this is exactly 0.5 whatever the position bias, since both terms see the same input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """-log sigmoid(r_chosen - r_rejected - margin), averaged over pairs."""
    return -F.logsigmoid(r_chosen - r_rejected - margin).mean()


def bt_probability(r_1: torch.Tensor, r_2: torch.Tensor) -> torch.Tensor:
    """P(y1 beats y2) under Bradley-Terry: sigmoid(r_1 - r_2)."""
    return torch.sigmoid(r_1 - r_2)


def verdict_loss(verdict_position_logits: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy at the verdict position: logits (B, V) over the full vocabulary, targets (B,)."""
    return F.cross_entropy(verdict_position_logits.float(), target_ids)


def verdict_probability(logit_a: torch.Tensor, logit_b: torch.Tensor) -> torch.Tensor:
    """P(A wins): the softmax over the two verdict-token logits, written as a sigmoid of their difference."""
    return torch.sigmoid(logit_a.float() - logit_b.float())


def both_orders_probability(p_a_wins_y1_first: torch.Tensor, p_a_wins_y2_first: torch.Tensor) -> torch.Tensor:
    """p(y1 beats y2) averaged over both presentation orders.

    Written as 0.5 + (p1 - p2) / 2 rather than (p1 + 1 - p2) / 2: equal in exact arithmetic, but this form is
    exactly 0.5 in floating point whenever both orders give the same P(A wins) (identical responses).
    """
    return 0.5 + 0.5 * (p_a_wins_y1_first - p_a_wins_y2_first)


def log_odds(p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """logit(p), clamped so a saturated judge gives a large finite value instead of inf."""
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)
