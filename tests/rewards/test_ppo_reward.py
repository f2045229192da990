"""ppo.reward forms on real tiny judges: the group win matrix (n(n-1) judge rows, BT n) and its mean win reward."""

import pytest
import torch

from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.rewards.ppo_reward import PPO_PRESETS, PPO_REWARDS, group_mean_win, ppo_label
from tests.rewards.test_rewards import PROMPTS, generative, policy_dir  # noqa: F401 -- the module fixture

GROUP = [" 1 2 3", " 3 1", " 1 3 2", " 2"]  # four samples for one prompt


def test_group_mean_win_by_hand():
    # P(0 beats 1) = 0.8, P(0 beats 2) = 0.6, P(1 beats 2) = 0.3; the rest follow from P(j, i) = 1 - P(i, j).
    matrix = torch.tensor([[[0.5, 0.8, 0.6], [0.2, 0.5, 0.3], [0.4, 0.7, 0.5]]])
    assert group_mean_win(matrix).tolist() == pytest.approx([0.7, 0.25, 0.55])
    assert group_mean_win(matrix).mean().item() == pytest.approx(0.5)  # a round robin's mean win is always 1/2


def test_bt_group_matrix_is_sigmoid_of_score_differences_from_n_scores(policy_dir):  # noqa: F811
    judge = BTReward.from_pretrained(policy_dir, max_prompt_tokens=64, max_response_tokens=24)
    torch.nn.init.normal_(judge.model.score.weight, std=1.0)
    prompts, responses = [PROMPTS[0]] * 4 + [PROMPTS[1]] * 4, GROUP + GROUP[::-1]
    before = judge.rows_judged
    matrix = judge.group_win_matrix(prompts, responses, 4)
    assert judge.rows_judged - before == 8  # one score per response
    scores = judge.score(prompts, responses).view(2, 4)
    assert torch.allclose(matrix, torch.sigmoid(scores[:, :, None] - scores[:, None, :]), atol=1e-6)
    assert torch.allclose(matrix + matrix.transpose(1, 2), torch.ones(2, 4, 4), atol=1e-6)


def test_generative_group_matrix_judges_each_pair_in_both_orders(policy_dir):  # noqa: F811
    judge = generative(policy_dir)
    torch.nn.init.normal_(judge.model.lm_head.weight, std=0.5)  # a judge with opinions (and a position bias)
    prompts = [PROMPTS[0]] * 4
    before = judge.rows_judged
    matrix = judge.group_win_matrix(prompts, GROUP, 4)
    assert judge.rows_judged - before == 4 * 3  # n(n-1) verdict rows: 6 pairs x 2 orders
    for i in range(4):
        for j in range(4):
            if i != j:
                direct = judge.compare([PROMPTS[0]], [GROUP[i]], [GROUP[j]])
                assert matrix[0, i, j].item() == pytest.approx(direct.item(), abs=1e-5)
    assert torch.all(matrix.diagonal(dim1=1, dim2=2) == 0.5)


def test_group_reward_is_centred_mean_win(policy_dir):  # noqa: F811
    judge = BTReward.from_pretrained(policy_dir, max_prompt_tokens=64, max_response_tokens=24)
    torch.nn.init.normal_(judge.model.score.weight, std=1.0)
    out = PPO_REWARDS.get("group").reward(judge, [PROMPTS[0]] * 4, GROUP, None, True, 4)
    expected = group_mean_win(judge.group_win_matrix([PROMPTS[0]] * 4, GROUP, 4)) - 0.5
    assert torch.allclose(out.reward, expected) and out.reward.sum().abs() < 1e-6 and out.win_prob is None
    assert not PPO_REWARDS.get("group").needs_anchor(judge) and PPO_REWARDS.get("group").min_group_size == 2


def test_presets_and_labels(make_cfg):
    for preset, reward in PPO_PRESETS.items():
        assert make_cfg(f"ppo={preset}").ppo.reward == reward  # the conf/ppo files are these presets
    assert ppo_label("scalar", "gae") == "standard" and ppo_label("anchor", "gae") == "pairwise"
    assert ppo_label("group", "rloo") == "group+rloo" and ppo_label("anchor", "grpo") == "pairwise+grpo"
