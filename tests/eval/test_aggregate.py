import math

import pytest

from pairwise_rl.eval.aggregate import matched_offsets, mean_ci, t95


def test_mean_and_95_percent_t_interval_hand_values():
    stat = mean_ci([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.303 -> 4.303 / sqrt(3) = 2.4844
    assert stat["mean"] == 2.0 and stat["n"] == 3
    assert stat["half_width"] == pytest.approx(4.303 / math.sqrt(3))
    assert math.isnan(mean_ci([0.7])["half_width"])


def test_t_quantiles():
    assert t95(1) == 12.706 and t95(12) == 2.228 and t95(100) == 1.96


def test_matched_offsets_recovers_parallel_lines_exactly():
    # bt on y = 0.5 + 0.2 x, generative on y = 0.49 + 0.2 x: one slope, generative 0.01 lower at any x, no residual
    fit = matched_offsets({"bt": [(0.5, 0.6), (0.7, 0.64)], "generative": [(0.5, 0.59), (0.6, 0.61)]})
    assert fit["reference"] == "bt" and fit["n"] == 4
    assert fit["slope"] == pytest.approx(0.2) and fit["intercept"] == pytest.approx(0.5)
    assert fit["offsets"]["generative"]["mean"] == pytest.approx(-0.01)
    assert fit["offsets"]["generative"]["half_width"] == pytest.approx(0.0, abs=1e-9)
    assert fit["offsets"]["generative"]["n"] == 2


def test_matched_offsets_hand_computed_slope_offset_and_interval():
    # bt (0, 0), (1, 1); generative (0, 1), (1, 1). Shared slope = pooled within-group Sxy / Sxx = (0.5 + 0) / 1
    # = 0.5; bt intercept 0.5 - 0.5 * 0.5 = 0.25, generative's 1 - 0.25 = 0.75, so the offset is 0.5. Residuals
    # +-0.25 each: RSS 0.25 on 4 - 3 = 1 dof; with equal x means the offset is a difference of two 2-point means,
    # variance 0.25 * (1/2 + 1/2), se 0.5, half-width t(0.975, 1) * 0.5 = 6.353.
    fit = matched_offsets({"bt": [(0.0, 0.0), (1.0, 1.0)], "generative": [(0.0, 1.0), (1.0, 1.0)]})
    assert fit["slope"] == pytest.approx(0.5) and fit["intercept"] == pytest.approx(0.25)
    assert fit["offsets"]["generative"]["mean"] == pytest.approx(0.5)
    assert fit["offsets"]["generative"]["half_width"] == pytest.approx(12.706 * 0.5)
    # Pearson r over all four points: Sxy = 0.5, Sxx = 1, Syy = 0.75 -> 0.5 / sqrt(0.75)
    assert fit["r"] == pytest.approx(0.5 / math.sqrt(0.75))


def test_matched_offsets_one_group_is_a_line_and_too_little_data_is_none():
    # (0, 0), (1, 1), (2, 1): Sxy = 1, Sxx = 2 -> slope 0.5, intercept 2/3 - 0.5 = 1/6
    fit = matched_offsets({"bt": [(0.0, 0.0), (1.0, 1.0), (2.0, 1.0)]})
    assert fit["slope"] == pytest.approx(0.5) and fit["intercept"] == pytest.approx(1 / 6) and fit["offsets"] == {}
    assert matched_offsets({"bt": [(0.5, 0.6)], "generative": [(0.6, 0.61), (0.7, 0.62)]}) is None  # no dof left
    no_x_spread = {"bt": [(0.5, 0.6), (0.5, 0.7)], "generative": [(0.6, 0.6), (0.6, 0.7)]}  # x says only the group
    assert matched_offsets(no_x_spread) is None
    assert matched_offsets({}) is None
    assert matched_offsets({"bt": [(0.5, 0.0), (0.7, 0.0)], "generative": [(0.5, 0.0), (0.6, 0.0)]})["r"] is None


def test_one_rm_mode_fits_a_slope_and_its_note_states_no_offset():
    from pairwise_rl.comparison.fits import fit_note

    # y = 0.6 - 0.1 x exactly: slope -0.1, r = -1, no second mode to offset
    fit = matched_offsets({"generative": [(0.5, 0.55), (0.6, 0.54), (0.7, 0.53)]})
    assert fit["slope"] == pytest.approx(-0.1) and fit["r"] == pytest.approx(-1.0) and fit["offsets"] == {}
    note = fit_note({"x": "RM gold accuracy", "y": "gold (sampled)", **fit})
    assert "slope -0.100, r = -1.00 (least squares" in note and "at the same" not in note
