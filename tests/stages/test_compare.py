"""stage=compare over a real (debug-size) two-seed run of pairwise_vs_bt."""

import csv
import json

import pytest
from omegaconf import open_dict

from pairwise_rl import provenance
from pairwise_rl.cli import run
from pairwise_rl.config import ConfigError, validate
from pairwise_rl.comparison.figures import reliability_by_group, scaling_curves
from pairwise_rl.comparison.fits import fit_note, gold_against_rm_accuracy, rm_accuracy_fit
from pairwise_rl.comparison.load import MixedCodeError, load_results


def two_seed_sweep(make_debug_cfg, tmp_path):
    """pairwise_vs_bt for seeds 0 and 1, laid out as a multirun directory (one result.json per job)."""
    sweep = tmp_path / "multirun"
    for seed in (0, 1):
        cfg = make_debug_cfg("experiment=pairwise_vs_bt", f"seed={seed}")
        with open_dict(cfg):
            cfg.paths.output_dir = str(sweep / str(seed))
        run(cfg)
    return sweep


def test_compare_aggregates_seeds_into_tables_and_plots(make_debug_cfg, tmp_path):
    sweep = two_seed_sweep(make_debug_cfg, tmp_path)
    summary = run(make_debug_cfg("stage=compare", f"compare.dir={sweep}"))
    assert set(summary) == {"sft (start)", "traditional", "pairwise_rl"}
    assert summary["traditional"]["gold (sampled)"]["n"] == 2
    for metric in ("gold (sampled)", "reward (own RM)", "KL to SFT", "RM accuracy", "RM ECE"):
        assert summary["pairwise_rl"][metric]["n"] == 2, metric
    with open(sweep / "compare.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["setup"] for r in rows} == set(summary) and all(r["n"] == "2" for r in rows)
    table = (sweep / "compare.md").read_text()
    assert "±" in table
    # a count every seed shares prints as a count: 8 BT scores (debug rollout) and 16 verdict rows (both orders)
    assert "| judge rows / iteration | - | 8 | 16 |" in table.splitlines()
    for plot in ("gold_vs_step.png", "gold_vs_kl.png", "rm_reliability.png"):
        assert (sweep / plot).stat().st_size > 1000
    # four distinct RMs (two seeds x two modes): the shared-slope fit has one dof, unless the debug RMs' accuracies
    # leave it singular; either way the file and the compare.md line follow the fit
    fit = rm_accuracy_fit(load_results(sweep))
    assert (fit is None) == (not (sweep / "gold_vs_rm_accuracy.json").exists())
    if fit is not None:
        assert fit["n"] == 4 and json.loads((sweep / "gold_vs_rm_accuracy.json").read_text()) == fit
        assert fit_note(fit) in table and "generative − bt = " in fit_note(fit)


def test_compare_refuses_runs_built_by_different_code_unless_allowed(make_debug_cfg, tmp_path):
    sweep = two_seed_sweep(make_debug_cfg, tmp_path)
    stale = sweep / "1" / "result.json"
    result = json.loads(stale.read_text())
    assert {v for stages in result["code_versions"].values() for v in stages.values()} == {
        provenance.current()["code_version"]}
    result["code_versions"]["pairwise_rl"]["ppo"] = "0" * 12  # as if seed 1's pairwise PPO came from other code
    stale.write_text(json.dumps(result))

    with pytest.raises(MixedCodeError, match="2 code versions") as error:
        run(make_debug_cfg("stage=compare", f"compare.dir={sweep}"))
    assert str(stale) in str(error.value) and "compare.allow_mixed_code=true" in error.value.fix

    summary = run(make_debug_cfg("stage=compare", f"compare.dir={sweep}", "compare.allow_mixed_code=true"))
    assert summary["pairwise_rl"]["gold (sampled)"]["n"] == 2
    table = (sweep / "compare.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| code version"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    setups = list(summary)
    assert cells[setups.index("traditional")] == provenance.current()["code_version"]
    assert cells[setups.index("pairwise_rl")].startswith("MIXED: ") and "0" * 12 in cells[setups.index("pairwise_rl")]


def test_compare_orders_selects_and_pairs_by_seed(make_debug_cfg, tmp_path):
    sweep = two_seed_sweep(make_debug_cfg, tmp_path)
    runs = {seed: json.loads((sweep / str(seed) / "result.json").read_text())["results"] for seed in (0, 1)}
    metrics = ["KL to SFT", "gold (sampled)"]
    run(make_debug_cfg("stage=compare", f"compare.dir={sweep}", f"compare.metrics={metrics}",
                       "compare.baseline=traditional", "compare.layout=setups_as_rows"))
    lines = (sweep / "compare.md").read_text().splitlines()
    assert lines[2] == "| setup | KL to SFT | gold (sampled) |"  # the chosen metrics, in the chosen order
    # setups in the experiment's order (sft first, then as pairwise_vs_bt lists them), one row each
    assert [line.split(" | ")[0][2:] for line in lines[4:7]] == ["sft (start)", "traditional", "pairwise_rl"]
    with open(sweep / "compare_paired.csv") as handle:
        paired = {(r["setup"], r["metric"]): r for r in csv.DictReader(handle)}
    assert ("traditional", "KL to SFT") not in paired  # the baseline is not paired with itself
    for metric in ("KL to SFT", "reward (own RM)"):
        diffs = [runs[s]["pairwise_rl"][metric] - runs[s]["traditional"][metric] for s in (0, 1)]
        row = paired[("pairwise_rl", metric)]
        assert float(row["mean"]) == pytest.approx(sum(diffs) / 2) and row["n"] == "2" and row["baseline"] == "traditional"
        # two seeds: t_{0.975, 1} = 12.706 times sd / sqrt(2), and sd of two values is |d0 - d1| / sqrt(2)
        assert float(row["half_width"]) == pytest.approx(12.706 * abs(diffs[0] - diffs[1]) / 2)
    assert "Paired difference, setup − traditional" in (sweep / "compare.md").read_text()

    with pytest.raises(ConfigError, match="compare.metrics"):
        run(make_debug_cfg("stage=compare", f"compare.dir={sweep}", "compare.metrics=['gold (samples)']"))
    with pytest.raises(ConfigError, match="compare.baseline='bt'"):
        run(make_debug_cfg("stage=compare", f"compare.dir={sweep}", "compare.baseline=bt"))


def test_compare_draws_rm_scaling_and_gold_against_rm_accuracy_for_a_data_size_sweep(make_debug_cfg, tmp_path):
    """rm_scaling's shape at debug size: BT on two training-set sizes, the generative RM on one (the 64-pair
    cells are pairwise_vs_bt's, already in the shared debug cache)."""
    cfg = make_debug_cfg("experiment=pairwise_vs_bt", "pipeline.setups=[{name: bt_32, rm: bt, ppo: standard, "
                         "overrides: {rm.num_train_pairs: 32, rm.max_steps: 5}}, {name: bt_64, rm: bt, ppo: standard}, "
                         "{name: generative_64, rm: generative, ppo: pairwise}]")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "multirun" / "0")
    run(cfg)
    sweep = tmp_path / "multirun"
    run(make_debug_cfg("stage=compare", f"compare.dir={sweep}"))
    results = load_results(sweep)
    rows = results[0]["results"]
    assert [rows[s]["RM train pairs"] for s in ("bt_32", "bt_64", "generative_64")] == [32, 64, 64]

    curves = scaling_curves(results)
    accuracy, gold = curves["RM accuracy on held-out pairs"], curves["PPO held-out gold (sampled)"]
    # (pairs, mean over seeds, half-width: none with one seed)
    assert [(x, m) for x, m, _ in sorted(accuracy["bt: RM accuracy"])] == [(32, rows["bt_32"]["RM accuracy"]),
                                                                           (64, rows["bt_64"]["RM accuracy"])]
    assert [(x, m) for x, m, _ in sorted(gold["bt: gold (sampled)"])] == [(32, rows["bt_32"]["gold (sampled)"]),
                                                                          (64, rows["bt_64"]["gold (sampled)"])]
    assert [(x, m) for x, m, _ in accuracy["generative: RM accuracy"]] == [(64, rows["generative_64"]["RM accuracy"])]
    assert all(w != w for line in accuracy.values() for _, _, w in line)
    column, points = gold_against_rm_accuracy(results)
    # a 20-step debug policy's answers often tie on gold; without a gold-ordering accuracy the labels' is used
    setups = ("bt_32", "bt_64", "generative_64")
    x = "RM gold accuracy" if all(rows[s].get("RM gold accuracy") is not None for s in setups) else "RM accuracy"
    assert column == x and points == {"bt": [(rows[s][x], rows[s]["gold (sampled)"]) for s in setups[:2]],
                                      "generative": [(rows[setups[2]][x], rows[setups[2]]["gold (sampled)"])]}
    for plot in ("rm_scaling.png", "gold_vs_rm_accuracy.png", "rm_reliability_by_kind.png"):
        assert (sweep / plot).stat().st_size > 1000, plot
    kinds = reliability_by_group(results)
    assert set(kinds) == {"sort", "reverse", "add"}
    assert set(kinds["add"]) == set(setups)  # one line per distinct RM, named by the first setup that used it


def test_a_run_of_one_data_size_draws_no_scaling_plot(make_debug_cfg, tmp_path):
    sweep = two_seed_sweep(make_debug_cfg, tmp_path)
    assert scaling_curves(load_results(sweep)) == {}
    run(make_debug_cfg("stage=compare", f"compare.dir={sweep}"))
    assert not (sweep / "rm_scaling.png").exists() and (sweep / "rm_reliability_by_kind.png").exists()


def test_compare_pairs_contrasts_chosen_setups_within_each_seed(make_debug_cfg, tmp_path):
    sweep = two_seed_sweep(make_debug_cfg, tmp_path)
    runs = {seed: json.loads((sweep / str(seed) / "result.json").read_text())["results"] for seed in (0, 1)}
    run(make_debug_cfg("stage=compare", f"compare.dir={sweep}",
                       "compare.pairs=[[pairwise_rl,traditional],[traditional,'sft (start)']]"))
    with open(sweep / "compare_paired.csv") as handle:
        paired = {(r["setup"], r["baseline"], r["metric"]): r for r in csv.DictReader(handle)}
    for setup, base in (("pairwise_rl", "traditional"), ("traditional", "sft (start)")):
        diffs = [runs[s][setup]["gold (sampled)"] - runs[s][base]["gold (sampled)"] for s in (0, 1)]
        assert float(paired[(setup, base, "gold (sampled)")]["mean"]) == pytest.approx(sum(diffs) / 2)
    assert ("pairwise_rl", "sft (start)", "gold (sampled)") not in paired  # only the pairs asked for
    table = (sweep / "compare.md").read_text()
    assert "Paired difference, setup − baseline" in table and "pairwise_rl − traditional" in table

    with pytest.raises(ConfigError, match="compare.pairs: no run has the setup 'bt'"):
        run(make_debug_cfg("stage=compare", f"compare.dir={sweep}", "compare.pairs=[[bt,traditional]]"))
    with pytest.raises(ConfigError, match="^compare.pairs:"):
        validate(make_debug_cfg("stage=compare", f"compare.dir={sweep}", "compare.baseline=traditional",
                                "compare.pairs=[[pairwise_rl,traditional]]"))
    with pytest.raises(ConfigError, match="^compare.pairs.0:"):
        validate(make_debug_cfg("stage=compare", f"compare.dir={sweep}", "compare.pairs=[[pairwise_rl]]"))


def test_quality_by_judge_cost_is_each_setups_gain_over_its_runs_start_at_its_judge_rows():
    from pairwise_rl.comparison.figures import quality_by_judge_cost

    def result(start, a_gold, b_gold):
        return {"setups": ["sft (start)", "a", "b", "rm_only"], "artifacts": {"a": {}, "b": {}, "rm_only": {}},
                "results": {"sft (start)": {"gold (sampled)": start},
                            "a": {"judge rows / iteration": 128.0, "gold (sampled)": a_gold},
                            "b": {"judge rows / iteration": 192.0, "gold (sampled)": b_gold},
                            "rm_only": {"judge rows / iteration": None, "gold (sampled)": None}}}

    # a: +0.01 and +0.03 over the two runs' starts; b: +0.02 twice although its absolute gold moves with the start
    found = quality_by_judge_cost([result(0.59, 0.60, 0.61), result(0.60, 0.63, 0.62)], "gold (sampled)")
    assert list(found) == ["a", "b"]  # an RM-only setup has no PPO cost
    rows, mean, width = found["a"]
    # gains 0.01, 0.03: sd 0.01414, se 0.01, t(0.975, 1) = 12.706
    assert (rows, mean, width) == (128.0, pytest.approx(0.02), pytest.approx(0.12706))
    assert found["b"][:2] == (192.0, pytest.approx(0.02)) and found["b"][2] == pytest.approx(0.0, abs=1e-9)
    one_cost = result(0.6, 0.6, 0.6)
    one_cost["results"]["b"]["judge rows / iteration"] = 128.0
    assert quality_by_judge_cost([one_cost], "gold (sampled)") == {}  # nothing to plot against
