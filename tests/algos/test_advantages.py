"""Advantage estimators against hand-computed values, and against the formulas TRL's trainers use."""

import math

import pytest
import torch

from pairwise_rl.algos.advantages import (ADVANTAGE_ESTIMATORS, AdvantageInputs, compute_advantages,
                                          grpo_advantages, returns_to_go, rloo_advantages, sequence_rewards)


def test_grpo_by_hand():
    rewards = torch.tensor([1.0, 2.0, 3.0, 6.0, 5.0, 5.0, 5.0, 5.0])
    # Group 1: mean 3, deviations -2 -1 0 3, unbiased std sqrt(14 / 3) = 2.1602469.
    std = math.sqrt(14 / 3)
    expected = [d / (std + 1e-4) for d in (-2, -1, 0, 3)] + [0.0] * 4  # group 2 has no spread: all zero, no NaN
    assert grpo_advantages(rewards, 4).tolist() == pytest.approx(expected, abs=1e-6)
    assert grpo_advantages(rewards, 4, scale_by_std=False).tolist() == [-2, -1, 0, 3, 0, 0, 0, 0]  # Dr. GRPO


def test_rloo_by_hand():
    rewards = torch.tensor([1.0, 2.0, 3.0, 6.0])
    # baselines: (12 - r) / 3 = 11/3, 10/3, 3, 2
    assert rloo_advantages(rewards, 4).tolist() == pytest.approx([1 - 11 / 3, 2 - 10 / 3, 0.0, 4.0])
    assert rloo_advantages(torch.tensor([0.2, 0.8]), 2).tolist() == pytest.approx([-0.6, 0.6])


def test_groups_must_be_whole():
    with pytest.raises(ValueError, match="samples_per_prompt=4"):
        grpo_advantages(torch.zeros(6), 4)


def test_sequence_rewards_subtract_the_summed_kl():
    x = AdvantageInputs(scores=torch.tensor([1.0, 2.0]), kl=torch.tensor([[0.1, 0.2, 9.0], [0.3, 9.0, 9.0]]),
                        mask=torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), kl_coef=0.5)
    assert sequence_rewards(x).tolist() == pytest.approx([1 - 0.5 * 0.3, 2 - 0.5 * 0.3])  # padding's KL ignored


def test_returns_to_go_by_hand():
    out = returns_to_go(torch.tensor([[1.0, 2.0, 3.0, 7.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]]), gamma=0.5)
    assert out.tolist() == [[1 + 0.5 * (2 + 0.5 * 3), 2 + 0.5 * 3, 3.0, 0.0]]


def test_reinforce_pp_whitens_the_returns_over_the_batch_by_hand():
    # Rewards at the last token: [[0, 1], [0, pad]] -> returns 1, 1, 0: mean 2/3, unbiased var 1/3.
    x = AdvantageInputs(scores=torch.tensor([1.0, 0.0]), kl=torch.zeros(2, 2),
                        mask=torch.tensor([[1.0, 1.0], [1.0, 0.0]]), kl_coef=0.0)
    advantages, returns = compute_advantages("reinforce_pp", x)
    s = math.sqrt(1 / 3)
    assert returns is None
    assert advantages.reshape(-1).tolist() == pytest.approx([(1 / 3) / s, (1 / 3) / s, (-2 / 3) / s, 0.0], abs=1e-6)


def test_critic_free_estimators_spread_one_advantage_over_the_response():
    x = AdvantageInputs(scores=torch.tensor([0.0, 1.0]), kl=torch.zeros(2, 3),
                        mask=torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]), kl_coef=0.1, group_size=2)
    for name in ("grpo", "rloo"):
        advantages, returns = compute_advantages(name, x)
        assert returns is None
        assert advantages[0, 2] == 0 and advantages[0, 0] == advantages[0, 1] < 0 < advantages[1, 0]
    assert ADVANTAGE_ESTIMATORS.get("gae").needs_critic
    assert not any(ADVANTAGE_ESTIMATORS.get(n).needs_critic for n in ("grpo", "rloo", "reinforce_pp"))
    assert ADVANTAGE_ESTIMATORS.get("grpo").min_group_size == ADVANTAGE_ESTIMATORS.get("rloo").min_group_size == 2


def test_gae_through_the_registry_equals_the_pure_function():
    from pairwise_rl.algos.ppo import gae, kl_shaped_rewards, masked_whiten

    torch.manual_seed(0)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    x = AdvantageInputs(scores=torch.randn(2), kl=torch.rand(2, 3), mask=mask, kl_coef=0.05,
                        values=torch.randn(2, 3), gamma=1.0, lam=0.95)
    advantages, returns = compute_advantages("gae", x)
    expected, expected_returns = gae(kl_shaped_rewards(x.scores, x.kl, mask, 0.05), x.values, mask, 1.0, 0.95)
    assert torch.allclose(advantages, masked_whiten(expected, mask)) and torch.allclose(returns, expected_returns)


# --------------------------------------------------------------------------------------------- TRL formulas
# The expressions below are transcribed from TRL (huggingface/trl): GRPOTrainer._generate_and_score_completions
# (trl/trainer/grpo_trainer.py: rewards.view(-1, num_generations).mean/std, then (r - mean) / (std + 1e-4)) and the
# PPO-style RLOOTrainer (trl/trainer/rloo_trainer.py: rlhf_reward = scores - kl_coef * kl.sum(1), reshaped
# (rloo_k, -1) -- samples k-major -- baseline = (sum - r) / (k - 1)). Our rows are prompt-major groups.
def trl_grpo(rewards: torch.Tensor, num_generations: int, scale_rewards: bool = True) -> torch.Tensor:
    mean_grouped_rewards = rewards.view(-1, num_generations).mean(dim=1)
    std_grouped_rewards = rewards.view(-1, num_generations).std(dim=1)
    mean_grouped_rewards = mean_grouped_rewards.repeat_interleave(num_generations, dim=0)
    std_grouped_rewards = std_grouped_rewards.repeat_interleave(num_generations, dim=0)
    advantages = rewards - mean_grouped_rewards
    if scale_rewards:
        advantages = advantages / (std_grouped_rewards + 1e-4)
    return advantages


def trl_rloo(scores_k_major: torch.Tensor, kl_k_major: torch.Tensor, kl_coef: float, rloo_k: int) -> torch.Tensor:
    rlhf_reward = scores_k_major - kl_coef * kl_k_major.sum(1)
    rlhf_reward = rlhf_reward.reshape(rloo_k, -1)
    baseline = (rlhf_reward.sum(0) - rlhf_reward) / (rloo_k - 1)
    return (rlhf_reward - baseline).flatten()


def test_grpo_equals_trl_grpotrainer_on_a_hand_built_batch():
    rewards = torch.tensor([0.1, 0.9, 0.4, 0.4, -1.0, 2.0, 0.5, 0.0, 3.0, 3.0, 3.0, 3.5])  # 3 prompts x 4
    for scale in (True, False):
        ours = grpo_advantages(rewards, 4, scale_by_std=scale)
        assert torch.allclose(ours, trl_grpo(rewards, 4, scale), atol=1e-6)


def test_rloo_equals_trl_rlootrainer_on_a_hand_built_batch():
    prompts, k, length = 3, 4, 5
    torch.manual_seed(1)
    scores = torch.randn(prompts * k)            # ours: prompt-major, [p0 s0, p0 s1, ..., p1 s0, ...]
    kl = torch.rand(prompts * k, length) * 0.1
    mask = torch.ones(prompts * k, length)
    ours, _ = compute_advantages("rloo", AdvantageInputs(scores=scores, kl=kl, mask=mask, kl_coef=0.05,
                                                         group_size=k))
    to_k_major = torch.arange(prompts * k).view(prompts, k).t().reshape(-1)  # TRL's row order
    theirs = trl_rloo(scores[to_k_major], kl[to_k_major], 0.05, k)
    back = torch.empty_like(to_k_major)
    back[to_k_major] = torch.arange(prompts * k)
    assert torch.allclose(ours[:, 0], theirs[back], atol=1e-6)
