"""Comparison topologies inside a prompt's group: match lists on hand-built groups, cost, order coins, no match
across prompts, and the group reward on real judges."""

import pytest
import torch

from pairwise_rl.rewards.base import PairProbabilities, RewardModel
from pairwise_rl.rewards.gold import GoldReward
from pairwise_rl.rewards.group_matches import GROUP_FITS, GROUP_TOPOLOGIES, GroupScheme, play_group
from pairwise_rl.rewards.ppo_reward import PPO_REWARDS, RewardRequest
from tests.rewards.test_rewards import generative, policy_dir  # noqa: F401 -- the module fixture

TOPOLOGIES = ["all_pairs", "circular", "random_reference", "knockout", "k_random"]


def _strength_judge(strength):
    """P(i beats j) = sigmoid(s_i - s_j) over local indices, the same strengths in every group."""
    s = torch.tensor(strength, dtype=torch.float32)
    return lambda first, second: torch.sigmoid(s[first] - s[second])


def _play(topology, n, k=2, groups=1, strength=None, seed=0):
    generators = [torch.Generator().manual_seed(seed + g) for g in range(groups)]
    judge = _strength_judge(strength if strength is not None else [0.0] * n)
    return GROUP_TOPOLOGIES.get(topology).play(judge, generators, n, k)


def _pairs(m, g=0):
    return list(zip(m.first[g].tolist(), m.second[g].tolist()))


def test_the_fixed_topologies_match_lists_by_hand():
    assert _pairs(_play("all_pairs", 4)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert _pairs(_play("circular", 4)) == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert _pairs(_play("circular", 2)) == [(0, 1)]  # not twice


def test_knockout_bracket_by_hand():
    # strengths: 1 > 3 > 0 > 2. Round 1: (0, 1) -> 1, (2, 3) -> 3; final (1, 3)
    assert _pairs(_play("knockout", 4, strength=[1.0, 3.0, 0.0, 2.0])) == [(0, 1), (2, 3), (1, 3)]
    # five samples, 4 strongest: (0, 1) (2, 3), 4 has a bye; then (w01, w23), 4 a bye again; then the final with 4
    assert _pairs(_play("knockout", 5, strength=[0.0, 1.0, 3.0, 2.0, 4.0])) == [(0, 1), (2, 3), (1, 2), (2, 4)]


def test_random_reference_is_a_star_around_one_drawn_sample():
    references = set()
    for seed in range(20):
        pairs = _pairs(_play("random_reference", 4, seed=seed))
        reference = {b for _, b in pairs}
        assert len(reference) == 1 and sorted(a for a, _ in pairs) == sorted(set(range(4)) - reference)
        references |= reference
    assert references == {0, 1, 2, 3}  # every sample can be drawn


@pytest.mark.parametrize("n,k", [(4, 1), (4, 2), (5, 2), (8, 3), (8, 2), (6, 5), (5, 4)])
def test_k_random_is_a_k_regular_graph(n, k):
    for seed in range(5):
        pairs = _pairs(_play("k_random", n, k=k, seed=seed))
        assert len(pairs) == n * k // 2 and all(a != b for a, b in pairs)
        assert len({frozenset(p) for p in pairs}) == len(pairs)  # no pair twice
        degree = torch.zeros(n, dtype=torch.long)
        for a, b in pairs:
            degree[a] += 1
            degree[b] += 1
        assert degree.tolist() == [k] * n
    if k == n - 1:
        assert {frozenset(p) for p in pairs} == {frozenset(p) for p in _pairs(_play("all_pairs", n))}


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("n", [2, 3, 4, 5, 8])
def test_cost_is_the_matches_played_and_every_sample_plays(topology, n):
    k = 1 if n % 2 == 0 else 2
    m = _play(topology, n, k=k, groups=3, strength=torch.randn(n, generator=torch.Generator().manual_seed(n)).tolist())
    assert m.first.shape == (3, GROUP_TOPOLOGIES.get(topology).matches_per_group(n, k))
    for g in range(3):
        assert {i for pair in _pairs(m, g) for i in pair} == set(range(n))


def test_costs_per_group_at_n_4_and_8():
    cost = {t: [GROUP_TOPOLOGIES.get(t).matches_per_group(n, 3 if n == 8 else 1) for n in (4, 8)]
            for t in TOPOLOGIES}
    assert cost == {"all_pairs": [6, 28], "circular": [4, 8], "random_reference": [3, 7], "knockout": [3, 7],
                    "k_random": [2, 12]}


class PositionJudge(RewardModel):
    """A judge with no opinion but its position bias: P(first shown wins) = 0.9. Counts rows like a real one."""
    mode = "position"

    def __init__(self):
        super().__init__(None, None, 0, 0)

    @property
    def order_sensitive(self):
        return True

    def training_loss(self, pairs):
        raise NotImplementedError

    def _pair_probabilities(self, prompts, y1, y2):
        self.rows_judged += len(prompts)
        return PairProbabilities(torch.full((len(prompts),), 0.9))

    def pair_probabilities(self, prompts, y1, y2):
        return self._pair_probabilities(prompts, y1, y2)

    @classmethod
    def from_pretrained(cls, directory, **spec):
        raise NotImplementedError


def test_an_order_sensitive_judge_sees_each_match_once_in_a_coin_flipped_order():
    judge, n, groups = PositionJudge(), 4, 400
    prompts = [f"p{g}" for g in range(groups) for _ in range(n)]
    responses = [f"r{g}-{i}" for g in range(groups) for i in range(n)]
    rating, m = play_group(judge, prompts, responses, n, GroupScheme("circular"), seed=0)
    assert judge.rows_judged == groups * n  # one row per match
    assert set((m.p.flatten() * 10).round().int().tolist()) == {9, 1}  # 0.9 where the listed first was shown first
    shown_first = (m.p > 0.5).float().mean().item()  # P(listed first won) = 0.9 exactly when shown first
    assert 0.45 < shown_first < 0.55  # a fair coin: 1,600 flips
    per_position = rating.view(groups, n).mean(0)
    assert torch.all((per_position - 0.5).abs() < 0.05)  # position bias averages out; always-first would give 0.9


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("fit", ["mean_win", "bradley_terry"])
def test_no_match_crosses_prompts(topology, fit):
    # The gold judge's verdict depends on the prompt: " 1 2 3" is the best answer to sort and the worst to reverse.
    judge = GoldReward({"sort": 0.1, "add": 0.3, "reverse": 0.1})
    a_prompt, b_prompt = "sort: 3 1 2 =", "reverse: 1 2 3 ="
    a = [" 1 2 3", " 3 2 1", " 1 3 2", " 2 1 3"]
    b = [" 3 2 1", " 1 2 3", " 3 1 2", " 2 1 3"]
    scheme = GroupScheme(topology, k=1, fit=fit)

    def reward(prompts, responses):
        return play_group(judge, prompts, responses, 4, scheme, seed=7)[0]

    alone_a, alone_b = reward([a_prompt] * 4, a), reward([b_prompt] * 4, b)
    together = reward([a_prompt] * 4 + [b_prompt] * 4, a + b)
    swapped = reward([b_prompt] * 4 + [a_prompt] * 4, b + a)
    assert torch.equal(together, torch.cat([alone_a, alone_b])) and torch.equal(swapped, torch.cat([alone_b, alone_a]))
    assert alone_a.argmax().item() == 0 and alone_b.argmax().item() == 0  # " 1 2 3" wins sort, " 3 2 1" reverse


@pytest.mark.parametrize("topology,rows", [("all_pairs", 12), ("circular", 8), ("random_reference", 6),
                                           ("knockout", 6), ("k_random", 4)])
def test_generative_group_reward_rows_and_centring(topology, rows, policy_dir):  # noqa: F811
    judge = generative(policy_dir)
    torch.nn.init.normal_(judge.model.lm_head.weight, std=0.5)
    prompts = ["sort: 3 1 2 ="] * 4
    group = [" 1 2 3", " 3 1", " 1 3 2", " 2"]
    for both_orders, per_match in ((True, 2), (False, 1)):
        judge.both_orders = both_orders
        before = judge.rows_judged
        request = RewardRequest(prompts, group, None, group_size=4, center=True, seed=3,
                                group=GroupScheme(topology, k=1))
        out = PPO_REWARDS.get("group").reward(judge, request)
        assert judge.rows_judged - before == rows // 2 * per_match
        if topology not in ("knockout", "random_reference"):  # every sample plays as often: centred sum is 0
            assert abs(out.reward.sum().item()) < 1e-5
        again = PPO_REWARDS.get("group").reward(judge, request)
        assert torch.equal(out.reward, again.reward)  # the same seed draws the same matches and coins


def test_bradley_terry_fit_on_a_round_robin_ranks_like_mean_win(policy_dir):  # noqa: F811
    judge = GoldReward({"sort": 0.2})
    prompts, group = ["sort: 4 3 2 1 ="] * 4, [" 1 2 3 4", " 1 2 4 3", " 2 1 4 3", " 4 3 2 1"]
    mean = play_group(judge, prompts, group, 4, GroupScheme("all_pairs", fit="mean_win"), seed=0)[0]
    fitted = play_group(judge, prompts, group, 4, GroupScheme("all_pairs", fit="bradley_terry"), seed=0)[0]
    assert torch.equal(mean.argsort(), fitted.argsort()) and fitted.mean().item() == pytest.approx(0.5, abs=1e-6)
    assert GROUP_FITS.names() == ["bradley_terry", "mean_win"]


def test_the_runtime_scheme_has_the_schema_defaults(make_cfg):
    # GroupScheme mirrors config.GroupConfig (rewards/ may not import config: an import circle through the stages)
    import dataclasses

    from pairwise_rl.config import GroupConfig
    from pairwise_rl.rewards.group_matches import GroupScheme

    assert dataclasses.asdict(GroupScheme()) == dataclasses.asdict(GroupConfig())
    cfg = make_cfg("ppo.group.topology=k_random", "ppo.group.k=3", "ppo.group.fit=bradley_terry", "ppo.group.ridge=0.5")
    assert GroupScheme.from_config(cfg.ppo) == GroupScheme("k_random", 3, "bradley_terry", 0.5)
