import math

import pytest

from pairwise_rl.eval.aggregate import mean_ci, t95


def test_mean_and_95_percent_t_interval_hand_values():
    stat = mean_ci([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.303 -> 4.303 / sqrt(3) = 2.4844
    assert stat["mean"] == 2.0 and stat["n"] == 3
    assert stat["half_width"] == pytest.approx(4.303 / math.sqrt(3))
    assert math.isnan(mean_ci([0.7])["half_width"])


def test_t_quantiles():
    assert t95(1) == 12.706 and t95(12) == 2.228 and t95(100) == 1.96
