import math
import random

import pytest

from pairwise_rl.tasks.oracle import label_pair, preference_probability


def test_preference_probability_hand_values():
    assert preference_probability(0.5, 0.5, 0.1) == 0.5
    assert preference_probability(1.0, 0.5, 0.5) == pytest.approx(1 / (1 + math.exp(-1.0)))  # 0.7311
    assert preference_probability(0.0, 1.0, 0.25) == pytest.approx(1 / (1 + math.exp(4.0)))   # 0.0180
    assert preference_probability(1.0, 0.0, 1e-4) == pytest.approx(1.0)  # no overflow for huge z
    assert preference_probability(0.0, 1.0, 1e-4) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        preference_probability(1.0, 0.0, 0.0)


@pytest.mark.parametrize("tau", [0.1, 0.3])
def test_label_rate_matches_the_sigmoid(tau):
    prompt = "sort: 4 9 1 7 ="
    better, worse = " 1 4 7 9", " 1 4 9 7"  # gold 1.0 vs 0.5
    expected = 1 / (1 + math.exp(-0.5 / tau))
    rng = random.Random(0)
    n = 20_000
    wins = sum(label_pair(prompt, better, worse, {"sort": tau}, rng).chosen == better for _ in range(n))
    # 5 standard errors of a binomial proportion
    assert abs(wins / n - expected) < 5 * math.sqrt(expected * (1 - expected) / n)


def test_label_pair_records_the_probability_of_the_chosen_response():
    pref = label_pair("add: 1 + 1 =", " 2", " 3", {"add": 0.3}, random.Random(1))
    p_first = preference_probability(1.0, 0.0, 0.3)
    assert pref.probability == pytest.approx(p_first if pref.chosen == " 2" else 1 - p_first)
