"""ppo.reward_transform against hand-computed values."""

import math
import threading

import pytest
import torch

from pairwise_rl.algos.reward_transforms import REWARD_TRANSFORMS, transform_reward, whiten_rewards


def test_registered_transforms():
    assert REWARD_TRANSFORMS.names() == ["logit", "logit_whiten", "none", "whiten"]


def test_none_returns_the_reward_unchanged():
    r = torch.tensor([0.25, -0.1])
    assert torch.equal(transform_reward("none", r, None), r)


def test_logit_is_the_log_odds_of_the_uncentred_probability():
    p = torch.tensor([0.75, 0.5, 0.2])
    centred = p - 0.5  # the form's reward under ppo.center_reward: logit ignores the centring
    out = transform_reward("logit", centred, p)
    assert out.tolist() == pytest.approx([math.log(3.0), 0.0, math.log(0.25)], abs=1e-6)


def test_whiten_hand_values():
    # r = [1, 2, 3, 6]: mean 3, unbiased var (4 + 1 + 0 + 9) / 3 = 14/3, std 2.160247
    out = whiten_rewards(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    std = math.sqrt(14.0 / 3.0)
    assert out.tolist() == pytest.approx([-2 / std, -1 / std, 0.0, 3 / std], abs=1e-5)
    # equal rewards: zeros, not inf
    assert torch.equal(whiten_rewards(torch.full((3,), 0.4)), torch.zeros(3))


def test_whiten_makes_the_spread_scale_free():
    r = torch.tensor([0.01, -0.02, 0.005, 0.0])
    assert torch.allclose(whiten_rewards(r), whiten_rewards(100 * r), atol=1e-3)  # up to eps / std
    assert whiten_rewards(r).std().item() == pytest.approx(1.0, abs=1e-4)


def test_whiten_over_ranks_equals_one_process_with_the_whole_batch():
    """Two ranks (threads) holding halves of a batch, with an all-sum over a barrier: the same numbers as
    whitening the whole batch in one process."""
    full = torch.tensor([1.0, 2.0, 3.0, 6.0])
    halves = [full[:2], full[2:]]
    barrier, slots, out = threading.Barrier(2), [None, None], [None, None]

    def all_sum_for(rank):
        def all_sum(t):
            slots[rank] = t
            barrier.wait()
            total = slots[0] + slots[1]
            barrier.wait()  # both have read before the next call overwrites
            return total
        return all_sum

    def run(rank):
        out[rank] = whiten_rewards(halves[rank], all_sum_for(rank))

    threads = [threading.Thread(target=run, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.allclose(torch.cat(out), whiten_rewards(full), atol=1e-6)


def test_logit_whiten_whitens_the_log_odds():
    p = torch.tensor([0.75, 0.5, 0.25])
    # log-odds [log 3, 0, -log 3]: mean 0, unbiased std log 3 -> [1, 0, -1]
    assert transform_reward("logit_whiten", p - 0.5, p).tolist() == pytest.approx([1.0, 0.0, -1.0], abs=1e-5)


def test_logit_without_a_probability_is_refused():
    with pytest.raises(ValueError, match="probability reward"):
        transform_reward("logit", torch.tensor([1.0]), None)
