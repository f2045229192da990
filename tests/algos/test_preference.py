import math

import pytest
import torch

from pairwise_rl.algos.preference import (both_orders_probability, bt_loss, bt_probability, log_odds, verdict_loss,
                                          verdict_probability)


def test_bt_loss_hand_values():
    # -log sigmoid(2) = 0.126928, -log sigmoid(0) = 0.693147
    assert bt_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])).item() == pytest.approx(0.410038, abs=1e-6)
    # with margin 1: differences become 1 and -1 -> 0.313262 and 1.313262
    assert bt_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]), margin=1.0).item() == pytest.approx(
        0.813262, abs=1e-6)


def test_bt_probability_is_sigmoid_of_the_difference():
    assert bt_probability(torch.tensor(3.0), torch.tensor(1.0)).item() == pytest.approx(1 / (1 + math.exp(-2)))


def test_verdict_loss_is_next_token_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    # -log(e^2 / (e^2 + 2)) = log(1 + 2 e^-2) = log(1.2706706) = 0.2395448
    assert verdict_loss(logits, torch.tensor([0])).item() == pytest.approx(0.2395448, abs=1e-6)


def test_verdict_probability_is_the_two_token_softmax():
    a, b = torch.tensor([2.0, -1.0]), torch.tensor([0.0, -1.0])
    expected = torch.softmax(torch.stack([a, b], -1), -1)[:, 0]
    assert torch.allclose(verdict_probability(a, b), expected)
    assert verdict_probability(torch.tensor(2.0), torch.tensor(0.0)).item() == pytest.approx(0.880797, abs=1e-6)


def test_both_orders_average():
    assert both_orders_probability(torch.tensor(0.9), torch.tensor(0.3)).item() == pytest.approx(0.8)
    # A judge that always says "A" (0.9 in both orders) is neutral after averaging.
    assert both_orders_probability(torch.tensor(0.9), torch.tensor(0.9)).item() == pytest.approx(0.5)


def test_log_odds_hand_values_and_saturation():
    assert log_odds(torch.tensor(0.75)).item() == pytest.approx(math.log(3), abs=1e-6)
    assert log_odds(torch.tensor(0.5)).item() == 0.0
    assert torch.isfinite(log_odds(torch.tensor([0.0, 1.0]))).all()
