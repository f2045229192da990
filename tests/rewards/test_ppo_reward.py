"""ppo.reward forms on real tiny judges: the group round robin (n(n-1) judge rows, BT n) and its mean win reward."""

import pytest
import torch

from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.rewards.group_matches import GroupScheme, play_group
from pairwise_rl.rewards.ppo_reward import PPO_PRESETS, PPO_REWARDS, RewardRequest, ppo_label
from tests.rewards.test_rewards import PROMPTS, generative, policy_dir  # noqa: F401 -- the module fixture

GROUP = [" 1 2 3", " 3 1", " 1 3 2", " 2"]  # four samples for one prompt


def _round_robin_matrix(rm, prompts, responses, n):
    """(G, n, n) P[i, j] from an all_pairs play: the matrix the round robin implies (P[j, i] = 1 - P[i, j])."""
    _, m = play_group(rm, prompts, responses, n, GroupScheme(), seed=0)
    matrix = torch.full((m.p.shape[0], n, n), 0.5)
    for g in range(m.p.shape[0]):
        for a, b, p in zip(m.first[g].tolist(), m.second[g].tolist(), m.p[g].tolist()):
            matrix[g, a, b], matrix[g, b, a] = p, 1.0 - p
    return matrix


def test_bt_round_robin_is_sigmoid_of_score_differences_from_n_scores(policy_dir):  # noqa: F811
    judge = BTReward.from_pretrained(policy_dir, max_prompt_tokens=64, max_response_tokens=24)
    torch.nn.init.normal_(judge.model.score.weight, std=1.0)
    prompts, responses = [PROMPTS[0]] * 4 + [PROMPTS[1]] * 4, GROUP + GROUP[::-1]
    before = judge.rows_judged
    matrix = _round_robin_matrix(judge, prompts, responses, 4)
    assert judge.rows_judged - before == 8  # one score per response
    scores = judge.score(prompts, responses).view(2, 4)
    assert torch.allclose(matrix, torch.sigmoid(scores[:, :, None] - scores[:, None, :]), atol=1e-6)


def test_generative_round_robin_judges_each_pair_in_both_orders(policy_dir):  # noqa: F811
    judge = generative(policy_dir)
    torch.nn.init.normal_(judge.model.lm_head.weight, std=0.5)  # a judge with opinions (and a position bias)
    prompts = [PROMPTS[0]] * 4
    before = judge.rows_judged
    matrix = _round_robin_matrix(judge, prompts, GROUP, 4)
    assert judge.rows_judged - before == 4 * 3  # n(n-1) verdict rows: 6 pairs x 2 orders
    for i in range(4):
        for j in range(4):
            if i != j:
                direct = judge.compare([PROMPTS[0]], [GROUP[i]], [GROUP[j]])
                assert matrix[0, i, j].item() == pytest.approx(direct.item(), abs=1e-5)


def test_group_reward_is_centred_mean_win(policy_dir):  # noqa: F811
    judge = BTReward.from_pretrained(policy_dir, max_prompt_tokens=64, max_response_tokens=24)
    torch.nn.init.normal_(judge.model.score.weight, std=1.0)
    request = RewardRequest([PROMPTS[0]] * 4, GROUP, None, group_size=4, center=True, seed=0)
    out = PPO_REWARDS.get("group").reward(judge, request)
    matrix = _round_robin_matrix(judge, [PROMPTS[0]] * 4, GROUP, 4)[0]
    expected = (matrix.sum(1) - 0.5) / 3 - 0.5  # mean over the 3 others (the diagonal's 1/2 taken out), centred
    assert torch.allclose(out.reward, expected, atol=1e-6) and out.reward.sum().abs() < 1e-6 and out.win_prob is None
    assert not PPO_REWARDS.get("group").needs_anchor(judge) and PPO_REWARDS.get("group").min_group_size == 2


def test_presets_and_labels(make_cfg):
    for preset, reward in PPO_PRESETS.items():
        assert make_cfg(f"ppo={preset}").ppo.reward == reward  # the conf/ppo files are these presets
    assert ppo_label("scalar", "gae") == "standard" and ppo_label("anchor", "gae") == "pairwise"
    assert ppo_label("group", "rloo") == "group+rloo" and ppo_label("anchor", "grpo") == "pairwise+grpo"
