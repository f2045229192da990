import math

import pytest
import torch

from pairwise_rl.algos.kl import kl_penalty
from pairwise_rl.algos.ppo import (AdaptiveKLController, FixedKLController, entropy_from_logits, explained_variance, gae,
                                   kl_shaped_rewards, masked_mean, masked_whiten, policy_loss, token_logprobs,
                                   value_loss)

ONES = torch.ones(1, 3)


def test_gae_gamma_lambda_one_gives_reward_to_go_minus_value():
    adv, ret = gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]), ONES, gamma=1.0, lam=1.0)
    assert adv.tolist()[0] == pytest.approx([0.5, 0.4, 0.3])
    assert ret.tolist()[0] == pytest.approx([1.0, 1.0, 1.0])


def test_gae_hand_values_with_discounting():
    # t=2: d=1-0.7=0.3, A=0.3; t=1: d=0.9*0.7-0.6=0.03, A=0.03+0.45*0.3=0.165; t=0: d=0.9*0.6-0.5=0.04, A=0.11425
    adv, _ = gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]), ONES, gamma=0.9, lam=0.5)
    assert adv.tolist()[0] == pytest.approx([0.11425, 0.165, 0.3])


def test_gae_ignores_right_padding():
    adv, ret = gae(torch.tensor([[0.0, 1.0, 5.0]]), torch.tensor([[0.5, 0.7, 9.0]]), torch.tensor([[1.0, 1.0, 0.0]]),
                   gamma=1.0, lam=1.0)
    assert adv.tolist()[0] == pytest.approx([0.5, 0.3, 0.0]) and ret.tolist()[0] == pytest.approx([1.0, 1.0, 0.0])


def test_masked_whiten_hand_values():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    # mean 2.5, unbiased variance 5/3, std 1.290994
    assert masked_whiten(x, mask).tolist()[0] == pytest.approx([-1.161895, -0.387298, 0.387298, 1.161895, 0.0],
                                                               abs=1e-5)
    assert masked_mean(x, mask).item() == 2.5


def test_policy_loss_clips_positive_advantages_and_not_negative_ones():
    logprobs, old = torch.tensor([[math.log(1.5)]]), torch.zeros(1, 1)
    loss, stats = policy_loss(logprobs, old, torch.tensor([[1.0]]), torch.ones(1, 1), clip_ratio=0.2)
    assert loss.item() == pytest.approx(-1.2) and stats["clipfrac"].item() == 1.0  # max(-1.5, -1.2)
    loss, stats = policy_loss(logprobs, old, torch.tensor([[-1.0]]), torch.ones(1, 1), clip_ratio=0.2)
    assert loss.item() == pytest.approx(1.5) and stats["clipfrac"].item() == 0.0   # max(1.5, 1.2)
    assert stats["approx_kl"].item() == pytest.approx(0.5 * math.log(1.5) ** 2)


def test_policy_loss_reports_how_far_the_ratio_is_from_one():
    # ratios 1.5, 0.8 and 1.1 (masked out): |r - 1| = 0.5, 0.2 -> mean 0.35, max 0.5
    logprobs = torch.log(torch.tensor([[1.5, 0.8, 1.1]]))
    _, stats = policy_loss(logprobs, torch.zeros(1, 3), torch.ones(1, 3), torch.tensor([[1.0, 1.0, 0.0]]), 0.2)
    assert stats["ratio_abs_dev"].item() == pytest.approx(0.35) and stats["ratio_max_dev"].item() == pytest.approx(0.5)


def test_dual_clip_caps_the_loss_for_negative_advantages():
    logprobs, old = torch.tensor([[math.log(1.5)]]), torch.zeros(1, 1)
    loss, stats = policy_loss(logprobs, old, torch.tensor([[-1.0]]), torch.ones(1, 1), clip_ratio=0.2, dual_clip=1.4)
    assert loss.item() == pytest.approx(1.4) and stats["dual_clipfrac"].item() == 1.0


def test_policy_loss_gradient_is_zero_when_clipped():
    logprobs = torch.tensor([[math.log(1.5)]], requires_grad=True)
    loss, _ = policy_loss(logprobs, torch.zeros(1, 1), torch.tensor([[1.0]]), torch.ones(1, 1), clip_ratio=0.2)
    loss.backward()
    assert logprobs.grad.item() == 0.0


def test_value_loss_hand_value():
    # clipped value 0.5 + 0.2 = 0.7: max((1-2)^2, (0.7-2)^2) = 1.69 -> 0.845
    loss, stats = value_loss(torch.tensor([[1.0]]), torch.tensor([[0.5]]), torch.tensor([[2.0]]), torch.ones(1, 1), 0.2)
    assert loss.item() == pytest.approx(0.845) and stats["vf_clipfrac"].item() == 1.0


def test_token_logprobs_and_entropy():
    logits = torch.zeros(1, 2, 4)
    assert token_logprobs(logits, torch.tensor([[0, 3]])).tolist()[0] == pytest.approx([-math.log(4)] * 2)
    assert entropy_from_logits(logits).tolist()[0] == pytest.approx([math.log(4)] * 2)
    peaked = torch.tensor([[[100.0, 0.0, 0.0, 0.0]]])
    assert entropy_from_logits(peaked).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("estimator,expected", [("k1", math.log(2)), ("k2", 0.5 * math.log(2) ** 2),
                                                ("k3", 0.5 - 1 + math.log(2))])
def test_kl_estimators_hand_values(estimator, expected):
    value = kl_penalty(torch.tensor(math.log(0.5)), torch.tensor(math.log(0.25)), estimator)
    assert value.item() == pytest.approx(expected, abs=1e-6)


def test_k1_and_k3_are_unbiased_estimates_of_the_true_kl():
    p, q = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.4, 0.4, 0.2])
    true_kl = (p * (p / q).log()).sum().item()
    samples = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    for estimator in ("k1", "k3"):
        estimate = kl_penalty(p.log()[samples], q.log()[samples], estimator).mean().item()
        assert estimate == pytest.approx(true_kl, abs=0.01)


def test_kl_shaped_rewards_put_the_score_on_the_last_response_token():
    rewards = kl_shaped_rewards(torch.tensor([2.0]), torch.tensor([[0.1, 0.2, 0.3]]), torch.tensor([[1.0, 1.0, 0.0]]),
                                kl_coef=0.5)
    assert rewards.tolist()[0] == pytest.approx([-0.05, 1.9, 0.0])


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 3.0]])
    assert explained_variance(returns, returns, ONES).item() == pytest.approx(1.0)
    assert explained_variance(torch.full_like(returns, 2.0), returns, ONES).item() == pytest.approx(0.0)


def test_kl_controllers():
    adaptive = AdaptiveKLController(0.1, target=1.0, horizon=100)
    adaptive.update(current_kl=2.0, n_samples=10)  # error clipped to +0.2 -> x1.02
    assert adaptive.value == pytest.approx(0.102)
    adaptive.update(current_kl=0.9, n_samples=10)  # error -0.1 -> x0.99
    assert adaptive.value == pytest.approx(0.102 * 0.99)
    fixed = FixedKLController(0.1)
    fixed.update(5.0, 10)
    assert fixed.value == 0.1
    restored = AdaptiveKLController(0.5, 1.0, 100)
    restored.load_state_dict(adaptive.state_dict())
    assert restored.value == adaptive.value


def test_auto_horizon_lets_beta_move_a_hundredfold_in_half_the_run():
    from pairwise_rl.algos.ppo import auto_horizon
    # 16 samples x 40 iterations: h = 0.2 * 16 / (1 - 100 ** (-1/20)) = 3.2 / 0.205672 = 15.559
    h = auto_horizon(16, 40)
    assert h == pytest.approx(3.2 / (1 - 100 ** (-1 / 20)), rel=1e-9) and h == pytest.approx(15.559, abs=1e-3)
    controller = AdaptiveKLController(1.0, target=1.0, horizon=h)
    for _ in range(20):
        controller.update(current_kl=0.0, n_samples=16)  # far below target: the clipped error every time
    assert controller.value == pytest.approx(0.01, rel=1e-6)
    # The old fixed horizon of 100 could only reach 0.27x in all 40 iterations (the arithmetic).
    old = AdaptiveKLController(1.0, target=1.0, horizon=100)
    for _ in range(40):
        old.update(current_kl=0.0, n_samples=16)
    assert old.value == pytest.approx((1 - 0.032) ** 40) and old.value == pytest.approx(0.2723, abs=1e-4)
    # Short runs: one step never moves beta by more than half.
    assert 0.2 * 8 / auto_horizon(8, 3) == pytest.approx(0.5)
