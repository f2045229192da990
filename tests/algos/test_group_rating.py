"""Ratings from in-group matches, against hand-computed values."""

import math

import pytest
import torch

from pairwise_rl.algos.group_rating import bradley_terry, fitted_mean_win, mean_win


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _matches(pairs, p):
    return (torch.tensor([[a for a, _ in pairs]]), torch.tensor([[b for _, b in pairs]]), torch.tensor([p]))


def test_mean_win_of_a_round_robin_by_hand():
    # P(0 beats 1) = 0.8, P(0 beats 2) = 0.6, P(1 beats 2) = 0.3
    first, second, p = _matches([(0, 1), (0, 2), (1, 2)], [0.8, 0.6, 0.3])
    rating = mean_win(first, second, p, 3)[0]
    assert rating.tolist() == pytest.approx([0.7, 0.25, 0.55])  # (0.8+0.6)/2, (0.2+0.3)/2, (0.4+0.7)/2
    assert rating.mean().item() == pytest.approx(0.5)           # a round robin's mean win is always 1/2


def test_mean_win_counts_only_the_matches_a_sample_played():
    # a star around sample 2 (random_reference): 0 beat it with 0.8, 1 with 0.6; it played both
    first, second, p = _matches([(0, 2), (1, 2)], [0.8, 0.6])
    assert mean_win(first, second, p, 3)[0].tolist() == pytest.approx([0.8, 0.6, 0.3])  # 2: (0.2 + 0.4) / 2


def test_bradley_terry_recovers_strengths_that_generated_the_outcomes():
    # outcomes exactly BT with theta = (1, 0, -1): the MLE is theta itself (a vanishing ridge only pins the mean)
    first, second, p = _matches([(0, 1), (1, 2), (0, 2)], [sigmoid(1), sigmoid(1), sigmoid(2)])
    theta = bradley_terry(first, second, p, 3, ridge=1e-9)[0]
    assert theta.tolist() == pytest.approx([1.0, 0.0, -1.0], abs=1e-6)
    rating = fitted_mean_win(theta.unsqueeze(0))[0]
    assert rating.tolist() == pytest.approx([(sigmoid(1) + sigmoid(2)) / 2, 0.5, (sigmoid(-1) + sigmoid(-2)) / 2],
                                            abs=1e-6)


def test_bradley_terry_one_match_is_the_log_odds_and_the_ridge_shrinks_it():
    first, second, p = _matches([(0, 1)], [0.75])
    theta = bradley_terry(first, second, p, 2, ridge=1e-9)[0]
    assert (theta[0] - theta[1]).item() == pytest.approx(math.log(3), abs=1e-6)  # logit(0.75)
    assert theta.sum().item() == pytest.approx(0.0, abs=1e-9)
    # with ridge 0.5 the optimum solves 0.75 - sigmoid(2 t) - 0.5 t = 0 (theta = (t, -t)): t = 0.2526 by bisection
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 0.75 - sigmoid(2 * mid) - 0.5 * mid > 0 else (lo, mid)
    shrunk = bradley_terry(first, second, p, 2, ridge=0.5)[0]
    assert shrunk.tolist() == pytest.approx([lo, -lo], abs=1e-8) and lo == pytest.approx(0.2526, abs=1e-4)


def test_bradley_terry_carries_strength_along_the_graph():
    # star around 2: 0 beat it with 0.8, 1 with 0.6. Never compared, 0 is still rated above 1, at the log-odds gap
    first, second, p = _matches([(0, 2), (1, 2)], [0.8, 0.6])
    theta = bradley_terry(first, second, p, 3, ridge=1e-9)[0]
    gap = math.log(0.8 / 0.2) - math.log(0.6 / 0.4)
    assert (theta[0] - theta[1]).item() == pytest.approx(gap, abs=1e-6)
    assert (theta[0] - theta[2]).item() == pytest.approx(math.log(4), abs=1e-6)


def test_bradley_terry_stays_finite_when_one_sample_wins_everything():
    first, second, p = _matches([(0, 1), (1, 2), (2, 3), (3, 0)], [1.0, 0.5, 0.5, 0.0])
    theta = bradley_terry(first, second, p, 4, ridge=0.01)[0]
    assert torch.isfinite(theta).all() and theta.argmax().item() == 0 and theta.sum().abs().item() < 1e-9
    # stationarity: the gradient of the penalised likelihood is 0 at the optimum
    d = theta[first[0]] - theta[second[0]]
    gradient = torch.zeros(4, dtype=torch.float64)
    gradient.index_add_(0, first[0], p[0].double() - torch.sigmoid(d))
    gradient.index_add_(0, second[0], torch.sigmoid(d) - p[0].double())
    assert (gradient - 0.01 * theta).abs().max().item() < 1e-8


def test_ratings_are_batched_per_group():
    first = torch.tensor([[0], [1]])
    second = torch.tensor([[1], [0]])
    p = torch.tensor([[0.9], [0.9]])
    assert mean_win(first, second, p, 2).flatten().tolist() == pytest.approx([0.9, 0.1, 0.1, 0.9])
    theta = bradley_terry(first, second, p, 2, ridge=0.01)
    assert theta[0].tolist() == pytest.approx(theta[1].flip(0).tolist())


def test_bad_matches_are_refused():
    with pytest.raises(ValueError, match="itself"):
        mean_win(torch.tensor([[0]]), torch.tensor([[0]]), torch.tensor([[0.5]]), 2)
    with pytest.raises(ValueError, match="0..1"):
        mean_win(torch.tensor([[0]]), torch.tensor([[2]]), torch.tensor([[0.5]]), 2)
    with pytest.raises(ValueError, match="at least one match"):
        mean_win(torch.tensor([[0]]), torch.tensor([[1]]), torch.tensor([[0.5]]), 3)
    with pytest.raises(ValueError, match="ridge"):
        bradley_terry(torch.tensor([[0]]), torch.tensor([[1]]), torch.tensor([[0.5]]), 2, ridge=0.0)
