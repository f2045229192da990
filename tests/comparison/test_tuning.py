"""Reading a tuning sweep by hand: selection on the validation column only, ties, minimisation, paired tuned and
untuned differences, and sweeps that are incomplete or unequal."""

import pytest

from pairwise_rl.comparison.tuning import (check_complete, collect, default_trial, paired, pick_overrides,
                                           select, select_arms, summary_rows)
from pairwise_rl.errors import DataSourceError

POINTS = {0: {}, 1: {"ppo.policy_lr": 1e-4}, 2: {"ppo.policy_lr": 3e-4}}
# {arm: {trial: {seed: (val gold, test gold)}}}
VALUES = {"traditional": {0: {0: (0.60, 0.61), 1: (0.62, 0.63)}, 1: {0: (0.64, 0.20), 1: (0.60, 0.22)},
                          2: {0: (0.58, 0.90), 1: (0.58, 0.92)}},
          "pairwise_rl": {0: {0: (0.59, 0.60), 1: (0.61, 0.60)}, 1: {0: (0.61, 0.65), 1: (0.63, 0.67)},
                          2: {0: (0.62, 0.66), 1: (0.62, 0.68)}}}


def results(values=VALUES, budget=3, **tune):
    """One job per (trial, seed), merged per seed as eval.runs.by_seed leaves them: setups renamed by trial."""
    runs = {}
    for arm, trials in values.items():
        for trial, seeds in trials.items():
            for seed, (val, test) in seeds.items():
                run = runs.setdefault(seed, {"seed": seed, "results": {}, "tuning": {}, "setups": [],
                                             "config": {"tune": {"budget": budget, "budgets": {},
                                                                 "select": {"metric": "val gold (sampled)",
                                                                            "mode": "max"}, **tune}}})
                name = f"{arm} [tune.trial={trial}]"
                run["results"][name] = {"val gold (sampled)": val, "gold (sampled)": test}
                run["tuning"][name] = {"arm": arm, "trial": trial, "point": POINTS[trial]}
                run["setups"].append(name)
    return [runs[s] for s in sorted(runs)]


def test_each_arm_is_selected_on_its_mean_validation_score_never_the_test_one():
    selections = select_arms(results())
    # traditional: val means 0.61, 0.62, 0.58 -> trial 1 (whose test gold is the worst, 0.21; trial 2 has 0.91)
    assert selections["traditional"].selected == 1
    assert selections["traditional"].best.mean("val gold (sampled)") == pytest.approx(0.62)
    # pairwise_rl: 0.60, 0.62, 0.62 -> a tie between 1 and 2 goes to the lower trial
    assert selections["pairwise_rl"].selected == 1
    assert pick_overrides(selections) == "'++tune.pick={traditional: 1, pairwise_rl: 1}'"
    flipped = {arm: {t: {s: (v, 1 - g) for s, (v, g) in seeds.items()} for t, seeds in trials.items()}
               for arm, trials in VALUES.items()}
    assert {a: s.selected for a, s in select_arms(results(flipped)).items()} == {"traditional": 1, "pairwise_rl": 1}


def test_minimising_a_validation_loss():
    trials = collect(results())["traditional"]
    assert select(trials, "val gold (sampled)", "min", 3).selected == 2  # 0.58


def test_the_tuned_and_untuned_arms_paired_within_seeds_by_hand():
    selections = select_arms(results())
    table = paired(selections, [("pairwise_rl", "traditional")], ["gold (sampled)"])
    tuned = table["pairwise_rl − traditional, tuned"]["gold (sampled)"]
    # seed 0: 0.65 - 0.20 = 0.45; seed 1: 0.67 - 0.22 = 0.45
    assert tuned["mean"] == pytest.approx(0.45) and tuned["half_width"] == pytest.approx(0.0, abs=1e-9)
    untuned = table["pairwise_rl − traditional, untuned"]["gold (sampled)"]
    # seed 0: 0.60 - 0.61 = -0.01; seed 1: 0.60 - 0.63 = -0.03; t(0.975, 1) = 12.706, sd = 0.01414
    assert untuned["mean"] == pytest.approx(-0.02) and untuned["half_width"] == pytest.approx(12.706 * 0.01, rel=1e-3)
    row = summary_rows(selections, ["gold (sampled)"])["traditional"]
    assert row["selected trial"] == 1 and row["settings"] == "ppo.policy_lr=0.0001" and row["budget (trials)"] == 3
    assert row["gold (sampled), tuned"]["mean"] == pytest.approx(0.21)
    assert row["gold (sampled), untuned"]["mean"] == pytest.approx(0.62)
    assert row["gold (sampled) over trials"] == "0.210 – 0.910"
    assert row["val gold (sampled) over trials"] == "0.580 – 0.620"
    assert default_trial(selections["traditional"]).index == 0


def test_an_incomplete_or_unequal_sweep_is_refused():
    missing = {arm: {t: dict(s) for t, s in trials.items()} for arm, trials in VALUES.items()}
    del missing["pairwise_rl"][2][1]
    with pytest.raises(DataSourceError, match=r"incomplete: 1 runs missing \(pairwise_rl trial 2 seed 1\)"):
        select_arms(results(missing))
    trials = collect(results())
    with pytest.raises(DataSourceError, match=r"unequal budgets \{'traditional': 3, 'pairwise_rl': 2\}"):
        check_complete(trials, {"traditional": 3, "pairwise_rl": 2}, [0, 1], allow_unequal=False)
    check_complete(trials, {"traditional": 3, "pairwise_rl": 2}, [0, 1], allow_unequal=True)
    no_metric = results()
    del no_metric[0]["results"]["traditional [tune.trial=2]"]["val gold (sampled)"]
    no_metric[1]["results"]["traditional [tune.trial=2]"]["val gold (sampled)"] = None
    with pytest.raises(DataSourceError, match=r"traditional trial 2 has no 'val gold \(sampled\)'"):
        select_arms(no_metric)


def test_runs_that_are_not_a_tuning_sweep_select_nothing():
    assert select_arms([{"seed": 0, "results": {"a": {}}, "config": {}}]) == {}
