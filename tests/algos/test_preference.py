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


def test_soft_bt_loss_hand_values():
    # d = log 3 -> sigmoid(d) = 0.75. q = 0.75: -(0.75 log 0.75 + 0.25 log 0.25) = 0.562335
    d = torch.tensor([math.log(3.0)])
    assert bt_loss(d, torch.zeros(1), target=torch.tensor([0.75])).item() == pytest.approx(0.562335, abs=1e-6)
    # d = 0: log 2 whatever q; q = 1 equals the hard loss
    assert bt_loss(torch.zeros(1), torch.zeros(1), target=torch.tensor([0.6])).item() == pytest.approx(math.log(2))
    hard = bt_loss(torch.tensor([2.0, -1.0]), torch.zeros(2))
    assert bt_loss(torch.tensor([2.0, -1.0]), torch.zeros(2), target=torch.ones(2)).item() == pytest.approx(hard.item())


def test_soft_verdict_loss_hand_values():
    # softmax([log 3, 0]) = [0.75, 0.25]; q = 0.5 on token 0, 0.5 on token 1: -(0.5 log 0.75 + 0.5 log 0.25) = 0.836988
    logits = torch.tensor([[math.log(3.0), 0.0]])
    loss = verdict_loss(logits, torch.tensor([0]), torch.tensor([1]), torch.tensor([0.5]))
    assert loss.item() == pytest.approx(0.836988, abs=1e-6)
    q1 = verdict_loss(logits, torch.tensor([0]), torch.tensor([1]), torch.tensor([1.0]))
    assert q1.item() == pytest.approx(verdict_loss(logits, torch.tensor([0])).item())


def test_order_averages_hand_values():
    from pairwise_rl.algos.preference import ORDER_AVERAGES
    m1, m2 = torch.tensor([math.log(3.0)]), torch.tensor([-math.log(3.0)])  # P(A) = 0.75 then 0.25: y1 wins both
    assert ORDER_AVERAGES.get("probability")(m1, m2).item() == pytest.approx(0.75)
    assert ORDER_AVERAGES.get("log_odds")(m1, m2).item() == pytest.approx(0.75)
    # A position bias of b = 2 logits on top of a content margin d = 0.5: m1 = d + b, m2 = -d + b.
    d, b = 0.5, 2.0
    m1, m2 = torch.tensor([d + b]), torch.tensor([-d + b])
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert ORDER_AVERAGES.get("log_odds")(m1, m2).item() == pytest.approx(s(d), abs=1e-6)  # bias cancelled: 0.622459
    assert ORDER_AVERAGES.get("probability")(m1, m2).item() == pytest.approx(0.5 + 0.5 * (s(2.5) - s(1.5)), abs=1e-6)
    assert 0.5 + 0.5 * (s(2.5) - s(1.5)) == pytest.approx(0.553284, abs=1e-6)  # squeezed towards 1/2


def test_order_averages_agree_on_the_winner_and_are_half_for_equal_margins():
    from pairwise_rl.algos.preference import ORDER_AVERAGES
    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(200, generator=g) * 3, torch.randn(200, generator=g) * 3
    p_prob, p_logit = ORDER_AVERAGES.get("probability")(m1, m2), ORDER_AVERAGES.get("log_odds")(m1, m2)
    assert torch.equal(p_prob > 0.5, p_logit > 0.5)
    same = torch.tensor([4.0, -1.0, 0.3])
    for name in ("probability", "log_odds"):
        assert torch.equal(ORDER_AVERAGES.get(name)(same, same), torch.full((3,), 0.5))
