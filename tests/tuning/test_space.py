"""Search spaces and trial points: the draws by hand, grid order, prefix-stable trials, bad spaces named."""

import math

import pytest

from pairwise_rl.checks import ConfigError
from pairwise_rl.tuning.space import Range, describe, draw_random, grid, parse_space, trial_points


class Midpoint:
    """An rng whose uniform(a, b) is the midpoint: the draws below are then computable by hand."""

    def uniform(self, a, b):
        return a + 0.5 * (b - a)


def test_a_range_draws_uniformly_log_uniformly_or_integers_by_hand():
    assert Range(0.0, 1.0).draw(Midpoint()) == 0.5
    assert Range(1e-4, 1e-2, log=True).draw(Midpoint()) == pytest.approx(1e-3)  # exp((ln 1e-4 + ln 1e-2) / 2)
    assert Range(200, 800).draw(Midpoint()) == 500 and isinstance(Range(200, 800).draw(Midpoint()), int)
    assert Range(1, 100, log=True).draw(Midpoint()) == 10  # exp(ln(100) / 2), rounded to an integer


def test_the_grid_lists_the_product_in_order_the_last_key_fastest():
    space = parse_space({"rm.lr": [1, 2], "ppo.reward_transform": ["none", "whiten", "logit"]}, "tune.spaces.a")
    assert grid(space) == [{"rm.lr": 1, "ppo.reward_transform": "none"}, {"rm.lr": 1, "ppo.reward_transform": "whiten"},
                           {"rm.lr": 1, "ppo.reward_transform": "logit"}, {"rm.lr": 2, "ppo.reward_transform": "none"},
                           {"rm.lr": 2, "ppo.reward_transform": "whiten"}, {"rm.lr": 2, "ppo.reward_transform": "logit"}]
    points = trial_points(space, 7, "grid", 0, include_default=True, where="tune.spaces.a")
    assert points[0] == {} and points[1:] == grid(space)  # trial 0: the untuned config
    with pytest.raises(ConfigError, match=r"tune.spaces.a: its grid has 6 points but the budget leaves 5 trials"):
        trial_points(space, 6, "grid", 0, include_default=True, where="tune.spaces.a")
    with pytest.raises(ConfigError, match=r"tune.spaces.b.rm.lr: tune.sampler=grid needs a list of choices"):
        trial_points(parse_space({"rm.lr": {"low": 1, "high": 2}}, "tune.spaces.b"), 1, "grid", 0, False,
                     "tune.spaces.b")


def test_random_trials_are_seeded_per_trial_and_key_so_budgets_extend_and_arms_share_draws():
    space = parse_space({"ppo.policy_lr": {"low": 1e-5, "high": 1e-3, "log": True}, "rm.max_steps": [200, 400, 800]},
                        "tune.spaces.a")
    six = trial_points(space, 6, "random", 3, include_default=True, where="w")
    assert trial_points(space, 4, "random", 3, include_default=True, where="w") == six[:4]  # prefix-stable
    assert six == trial_points(space, 6, "random", 3, include_default=True, where="w")  # a pure function
    assert six != trial_points(space, 6, "random", 4, include_default=True, where="w")  # tune.seed matters
    assert all(1e-5 <= p["ppo.policy_lr"] <= 1e-3 and p["rm.max_steps"] in (200, 400, 800) for p in six[1:])
    assert len({p["ppo.policy_lr"] for p in six[1:]}) == 5
    # another arm with one more key draws the same policy_lr at every trial (common random numbers)
    other = parse_space({"ppo.policy_lr": {"low": 1e-5, "high": 1e-3, "log": True}, "ppo.reward_transform": ["none"]},
                        "tune.spaces.b")
    assert [p["ppo.policy_lr"] for p in trial_points(other, 6, "random", 3, True, "w")[1:]] == [
        p["ppo.policy_lr"] for p in six[1:]]
    # a log-uniform draw: over many trials about half the draws fall below the geometric midpoint 1e-4
    draws = [draw_random(space, 0, t)["ppo.policy_lr"] for t in range(400)]
    assert 0.4 < sum(d < 1e-4 for d in draws) / 400 < 0.6
    assert math.isclose(sorted(draws)[0], min(draws))


@pytest.mark.parametrize("raw,message", [
    ({}, r"tune.spaces.a: an empty search space"),
    ({"rm.lr": []}, r"tune.spaces.a.rm.lr: an empty list of choices"),
    ({"rm.lr": {"low": 1e-3, "high": 1e-3}}, r"tune.spaces.a.rm.lr: an empty range, low=0.001 is not below high"),
    ({"rm.lr": {"low": 0, "high": 1, "log": True}}, r"tune.spaces.a.rm.lr: a log range needs low > 0"),
    ({"rm.lr": {"low": 0, "high": 1, "step": 2}}, r"tune.spaces.a.rm.lr: a range is \{low, high, log\}"),
    ({"rm.lr": [1, 1]}, r"tune.spaces.a.rm.lr: choices \[1, 1\] repeat a value"),
    ({"rm.lr": 0.001}, r"tune.spaces.a.rm.lr: give a list of choices or a range"),
])
def test_bad_spaces_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_space(raw, "tune.spaces.a")


def test_describe_names_the_settings_or_defaults():
    assert describe({}) == "defaults"
    assert describe({"ppo.policy_lr": 0.000123456, "ppo.reward_transform": "whiten"}) == (
        "ppo.policy_lr=0.0001235, ppo.reward_transform=whiten")
