import pytest
import torch

from pairwise_rl.eval.metrics import (accuracy, brier, ece, nll, pool_reliability, position_consistency,
                                      preference_metrics, reliability)

P = torch.tensor([0.1, 0.2, 0.8, 0.9])
Y = torch.tensor([0.0, 1.0, 1.0, 1.0])


def test_accuracy_counts_ties_as_half():
    assert accuracy(P, Y) == pytest.approx(0.75)
    assert accuracy(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])) == pytest.approx(0.5)


def test_brier_and_nll_hand_values():
    assert brier(P, Y) == pytest.approx((0.01 + 0.64 + 0.04 + 0.01) / 4)
    expected_nll = -(torch.log(torch.tensor([0.9, 0.2, 0.8, 0.9]))).mean().item()
    assert nll(P, Y) == pytest.approx(expected_nll, rel=1e-6)


def test_ece_hand_value_with_two_bins():
    # bin [0, .5): mean p 0.15, frequency 0.5 -> 0.35 * 2/4; bin [.5, 1]: mean p 0.85, frequency 1.0 -> 0.15 * 2/4
    assert ece(P, Y, bins=2) == pytest.approx(0.25)
    rel = reliability(P, Y, bins=2)
    assert rel.count == [2, 2] and rel.confidence == pytest.approx([0.15, 0.85]) and rel.frequency == [0.5, 1.0]


def test_ece_is_zero_for_perfect_calibration_and_handles_empty_bins_and_p_equal_one():
    probs = torch.tensor([0.25] * 4 + [1.0] * 2)
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    rel = reliability(probs, labels, bins=4)
    assert rel.ece == pytest.approx(0.0) and rel.count == [0, 4, 0, 2]


def test_pooled_reliability_equals_judging_all_pairs_together():
    # run 1: bins [2, 2] as above; run 2: p = 0.3 (label 0) and 0.7 (label 1) -> bin means 0.3 / 0.7
    p2, y2 = torch.tensor([0.3, 0.7]), torch.tensor([0.0, 1.0])
    pooled = pool_reliability([reliability(P, Y, bins=2), reliability(p2, y2, bins=2)])
    # bin 0: p 0.1, 0.2, 0.3 -> 0.2, labels 0, 1, 0 -> 1/3; bin 1: p 0.8, 0.9, 0.7 -> 0.8, labels all 1 -> 1.0
    assert pooled.count == [3, 3]
    assert pooled.confidence == pytest.approx([0.2, 0.8]) and pooled.frequency == pytest.approx([1 / 3, 1.0])
    assert pooled.ece == pytest.approx(0.5 * (1 / 3 - 0.2) + 0.5 * 0.2)
    assert pooled.ece == pytest.approx(reliability(torch.cat([P, p2]), torch.cat([Y, y2]), bins=2).ece)
    with pytest.raises(ValueError, match="different bins"):
        pool_reliability([reliability(P, Y, bins=2), reliability(P, Y, bins=4)])


def test_position_consistency_hand_value():
    first = torch.tensor([0.8, 0.6, 0.3])   # y1 wins, y1 wins, y2 wins
    second = torch.tensor([0.1, 0.7, 0.6])  # (y2 as A) y1 wins, y2 wins, y2 wins
    assert position_consistency(first, second) == pytest.approx(2 / 3)


def test_preference_metrics_gold_accuracy_skips_gold_ties_and_oracle_error():
    gold = torch.tensor([0.0, float("nan"), 1.0, 0.0])
    true = torch.tensor([0.1, 0.5, 0.9, 0.9])
    metrics = preference_metrics(P, Y, 2, gold_labels=gold, true_probs=true)
    assert metrics["gold_accuracy"] == pytest.approx(2 / 3)
    assert metrics["oracle_prob_mae"] == pytest.approx((0.0 + 0.3 + 0.1 + 0.0) / 4)


def test_judged_by_group_gives_each_group_its_own_metrics_and_diagram():
    from pairwise_rl.eval.preference import JudgedPairs, PairSet, judged_by_group

    p = torch.tensor([0.9, 0.2, 0.7, 0.4, 0.6])
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0])
    pairs = PairSet(["s"] * 5, ["a"] * 5, ["b"] * 5, labels, gold_labels=torch.tensor([1.0, 0.0, float("nan"), 0.0, 1.0]))
    judged = JudgedPairs({}, None, p, p_first=torch.tensor([0.9, 0.3, 0.8, 0.4, 0.6]),
                         p_second=torch.tensor([0.1, 0.6, 0.4, 0.6, 0.4]))
    groups = judged_by_group(pairs, judged, ["sort", "add", "sort", None, "add"], bins=2)
    assert list(groups) == ["sort", "add"]  # first-seen order; the pair without a group is in neither
    sort, add = groups["sort"].metrics, groups["add"].metrics
    # sort: pairs 0 (p .9, y 1: right) and 2 (p .7, y 0: wrong); add: pairs 1 (.2, 1: wrong) and 4 (.6, 1: right)
    assert sort["accuracy"] == add["accuracy"] == 0.5 and sort["pairs"] == add["pairs"] == 2
    # 2 bins: sort has .9 and .7 in the upper bin, mean .8 against frequency .5 -> ECE .3
    assert sort["ece"] == pytest.approx(0.3)
    # add: .2 alone in the lower bin (|.2 - 1| = .8), .6 alone in the upper (|.6 - 1| = .4): ECE (.8 + .4) / 2
    assert add["ece"] == pytest.approx(0.6)
    assert sort["gold_accuracy"] == 1.0 and add["gold_accuracy"] == 1.0  # pair 2's gold tie is skipped
    # position consistency: pair 0 (0.9 / 0.1: same), 2 (0.8 / 0.4: same); pair 1 (0.3 / 0.6: same), 4 (.6/.4: same)
    assert sort["position_consistency"] == 1.0 and add["position_consistency"] == 1.0
    assert groups["add"].reliability.count == [1, 1] and groups["sort"].reliability.count == [0, 2]
