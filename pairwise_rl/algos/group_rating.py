"""Per-sample ratings from the matches judged inside a prompt's group (ppo.reward=group; rewards/group_matches.py).

A group holds n samples of one prompt. A comparison topology judges some matches (i, j) with outcome
p = P(i beats j); every function here takes them as (G, M) tensors: G groups of M matches each, sample indices
local to their group (0..n-1), so no rating ever mixes two prompts' samples.

    mean_win       r_i = mean over the matches i played of P(i won). All pairs: the round robin's mean win.
                   With fewer matches it depends on who i happened to meet.
    bradley_terry  fit strengths theta to the matches (soft outcomes, ridge lambda), then rate each sample by its
                   fitted mean win over all n-1 others:  r_i = mean_{j != i} sigmoid(theta_i - theta_j).
                   Strength carries along the comparison graph (i beat j, j beat k: i is rated above k), and the
                   rating is on the round robin's scale, whatever the topology.

The fit maximises  sum_m [p_m log s(d_m) + (1 - p_m) log s(-d_m)] - lambda/2 |theta|^2,  d_m = theta_i - theta_j,
by Newton's method with backtracking (concave: the Hessian is -(L + lambda I), L the comparison graph's Laplacian
weighted by s(d)(1 - s(d))). The gradient sums to -lambda sum(theta), so at the optimum the strengths sum to 0;
lambda keeps them finite when a sample wins every match with p near 1.
"""

from __future__ import annotations

import torch


def _check(first: torch.Tensor, second: torch.Tensor, p: torch.Tensor, n: int) -> None:
    if not (first.shape == second.shape == p.shape) or first.dim() != 2:
        raise ValueError(f"matches must be (groups, matches) tensors of one shape, got {tuple(first.shape)}, "
                         f"{tuple(second.shape)}, {tuple(p.shape)}")
    if first.numel() and (min(first.min(), second.min()) < 0 or max(first.max(), second.max()) >= n):
        raise ValueError(f"match indices must lie in 0..{n - 1} (local to their group)")
    if torch.any(first == second):
        raise ValueError("a sample cannot be matched against itself")


def mean_win(first: torch.Tensor, second: torch.Tensor, p: torch.Tensor, n: int) -> torch.Tensor:
    """(G, n): each sample's mean P(win) over the matches it played (first won with p, second with 1 - p)."""
    _check(first, second, p, n)
    groups = first.shape[0]
    wins = torch.zeros(groups, n, dtype=torch.float64)
    played = torch.zeros(groups, n, dtype=torch.float64)
    p = p.double()
    wins.scatter_add_(1, first, p).scatter_add_(1, second, 1.0 - p)
    played.scatter_add_(1, first, torch.ones_like(p)).scatter_add_(1, second, torch.ones_like(p))
    if torch.any(played == 0):
        raise ValueError("every sample of a group must play at least one match")
    return (wins / played).float()


def bradley_terry(first: torch.Tensor, second: torch.Tensor, p: torch.Tensor, n: int, ridge: float,
                  iterations: int = 50, tolerance: float = 1e-10) -> torch.Tensor:
    """(G, n) strengths theta maximising the ridge-penalised soft-outcome BT likelihood (Newton, float64)."""
    _check(first, second, p, n)
    if ridge <= 0:
        raise ValueError(f"ridge must be > 0 (it makes the fit unique and finite), got {ridge}")
    groups = first.shape[0]
    p = p.double()
    theta = torch.zeros(groups, n, dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.float64)
    one_hot = (torch.nn.functional.one_hot(first, n) - torch.nn.functional.one_hot(second, n)).double()  # (G, M, n)

    def objective(t: torch.Tensor) -> torch.Tensor:  # (G,) penalised log-likelihood
        d = (one_hot @ t.unsqueeze(-1)).squeeze(-1)
        log_s = torch.nn.functional.logsigmoid
        return (p * log_s(d) + (1 - p) * log_s(-d)).sum(1) - ridge / 2 * (t * t).sum(1)

    for _ in range(iterations):
        d = (one_hot @ theta.unsqueeze(-1)).squeeze(-1)                   # (G, M) theta_i - theta_j
        s = torch.sigmoid(d)
        gradient = (one_hot * (p - s).unsqueeze(-1)).sum(1) - ridge * theta  # (G, n)
        weight = (s * (1 - s)).unsqueeze(-1).unsqueeze(-1)                 # (G, M, 1, 1)
        laplacian = (weight * one_hot.unsqueeze(-1) * one_hot.unsqueeze(-2)).sum(1)  # (G, n, n)
        step = torch.linalg.solve(laplacian + ridge * eye, gradient.unsqueeze(-1)).squeeze(-1)
        # Backtracking per group: a full Newton step can overshoot where outcomes are near 0 or 1.
        scale, current = torch.ones(groups, 1, dtype=torch.float64), objective(theta)
        for _ in range(30):
            worse = objective(theta + scale * step) < current
            if not worse.any():
                break
            scale[worse] /= 2
        theta = theta + scale * step
        if (scale * step).abs().max() < tolerance:
            break
    return theta


def fitted_mean_win(theta: torch.Tensor) -> torch.Tensor:
    """(G, n): mean over the n-1 others of sigmoid(theta_i - theta_j), the round robin the fit implies."""
    n = theta.shape[-1]
    probability = torch.sigmoid(theta.unsqueeze(-1) - theta.unsqueeze(-2))
    off_diagonal = 1.0 - torch.eye(n, dtype=probability.dtype)
    return ((probability * off_diagonal).sum(-1) / (n - 1)).float()
