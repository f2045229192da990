"""eval.runs: a multirun's jobs as one observation per (setup, seed), on hand-built result.json files."""

import json

import pytest

from pairwise_rl.comparison.load import load_results
from pairwise_rl.comparison.stats import summarise


def write_job(directory, seed, rows, overrides=None):
    """A job's result.json as stage=pipeline writes it: rows {setup: gold}; a setup's artifacts name its value, so
    two rows with different values are different cells. `overrides` go to .hydra/overrides.yaml."""
    directory.mkdir(parents=True)
    results = {setup: {"gold (sampled)": gold} for setup, gold in rows.items()}
    artifacts = {setup: {"ppo": f"/cache/ppo-{setup}-{gold}"} for setup, gold in rows.items() if setup != "sft (start)"}
    (directory / "result.json").write_text(json.dumps({
        "seed": seed, "results": results, "artifacts": artifacts, "setups": list(rows), "columns": ["gold (sampled)"],
        "code_versions": {setup: {"ppo": "abc"} for setup in artifacts}}))
    if overrides is not None:
        (directory / ".hydra").mkdir()
        (directory / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in [f"seed={seed}", *overrides]))


def gold(summary, setup):
    return summary[setup]["gold (sampled)"]


def test_a_seed_split_over_jobs_counts_once_and_its_shared_rows_once(tmp_path):
    for seed, (start, a, b) in {0: (0.60, 0.62, 0.66), 1: (0.64, 0.70, 0.68)}.items():
        write_job(tmp_path / "part1" / str(seed), seed, {"sft (start)": start, "a_small": a},
                  ["pipeline.setups=[small]"])
        write_job(tmp_path / "part2" / str(seed), seed, {"sft (start)": start, "a_large": b},
                  ["pipeline.setups=[large]"])
    runs = load_results(tmp_path)
    assert [r["seed"] for r in runs] == [0, 1]
    assert runs[0]["setups"] == ["sft (start)", "a_small", "a_large"]
    assert set(runs[0]["artifacts"]) == {"a_small", "a_large"} and runs[1]["source"].count("result.json") == 2
    summary = summarise(runs)
    # the start row: one value per seed, (0.60 + 0.64) / 2, not four values
    assert gold(summary, "sft (start)")["n"] == 2 and gold(summary, "sft (start)")["mean"] == pytest.approx(0.62)
    # t(0.975, 1) = 12.706; sd of two values = |x0 - x1| / sqrt 2, over sqrt 2: half-width 12.706 * |x0 - x1| / 2
    assert gold(summary, "a_large")["half_width"] == pytest.approx(12.706 * 0.02 / 2)


def test_a_sweep_over_another_key_splits_the_setup_by_that_key_in_every_seed(tmp_path):
    golds = {(0, "0.1"): 0.61, (0, "1.0"): 0.65, (1, "0.1"): 0.63, (1, "1.0"): 0.69}
    for job, ((seed, target), value) in enumerate(golds.items()):
        write_job(tmp_path / str(job), seed, {"sft (start)": 0.6 + seed / 100, "traditional": value},
                  [f"ppo.kl.target={target}", "logger=csv"])
    summary = summarise(load_results(tmp_path))
    assert list(summary) == ["sft (start)", "traditional [ppo.kl.target=0.1]", "traditional [ppo.kl.target=1.0]"]
    assert gold(summary, "traditional [ppo.kl.target=0.1]")["mean"] == pytest.approx((0.61 + 0.63) / 2)
    assert gold(summary, "traditional [ppo.kl.target=1.0]")["mean"] == pytest.approx((0.65 + 0.69) / 2)
    assert gold(summary, "traditional [ppo.kl.target=1.0]")["n"] == 2 and gold(summary, "sft (start)")["n"] == 2


def test_jobs_with_no_overrides_on_record_are_told_apart_by_their_directory(tmp_path):
    write_job(tmp_path / "first", 0, {"traditional": 0.61})
    write_job(tmp_path / "rerun", 0, {"traditional": 0.65})
    (run,) = load_results(tmp_path)
    assert run["results"] == {"traditional [first]": {"gold (sampled)": 0.61},
                              "traditional [rerun]": {"gold (sampled)": 0.65}}
    assert set(run["code_versions"]) == set(run["artifacts"]) == set(run["results"])


def test_two_different_cells_under_one_name_and_one_label_are_refused(tmp_path):
    write_job(tmp_path / "a" / "0", 0, {"traditional": 0.61})
    write_job(tmp_path / "b" / "0", 0, {"traditional": 0.65})
    with pytest.raises(ValueError, match="seed 0 has two different cells named 'traditional \\[0\\]'"):
        load_results(tmp_path)
