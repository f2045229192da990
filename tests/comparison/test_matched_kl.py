"""Gold at matched KL, against hand-computed interpolations, and stage=compare on a hand-built KL-budget sweep."""

import csv
import json

import pytest

from pairwise_rl.cli import run
from pairwise_rl.comparison.matched_kl import arm_of, frontiers, gold_at, kl_ranges, matched_kl
from pairwise_rl.config import ConfigError

T95_1 = 12.706  # t(0.975, 1 degree of freedom)


def test_arm_of_strips_the_sweep_label():
    assert arm_of("pairwise_rl [ppo.kl.target=0.1]") == "pairwise_rl"
    assert arm_of("pairwise_rl [ppo.kl.target=0.1, seed_offset=2]") == "pairwise_rl"
    assert arm_of("traditional") == "traditional"


def test_gold_at_interpolates_between_points_and_never_beyond():
    points = [(0.0, 0.60), (0.2, 0.64), (0.6, 0.62)]
    assert gold_at(points, 0.1) == pytest.approx(0.62)          # halfway from 0.60 to 0.64
    assert gold_at(points, 0.5) == pytest.approx(0.625)         # 0.64 + (0.62 - 0.64) * 0.3 / 0.4
    assert gold_at(points, 0.2) == pytest.approx(0.64)
    assert gold_at(points, 0.7) is None and gold_at([], 0.1) is None
    # two budgets that spent the same KL count as one point, their mean
    assert gold_at([(0.0, 0.6), (0.4, 0.62), (0.4, 0.66)], 0.2) == pytest.approx(0.6 + 0.04 / 2)


def run_result(seed, start, points):
    """One seed's merged result: {setup: (KL, gold)} rows plus the start row."""
    results = {"sft (start)": {"KL to SFT": 0.0, "gold (sampled)": start}}
    results.update({setup: {"KL to SFT": kl, "gold (sampled)": g} for setup, (kl, g) in points.items()})
    return {"seed": seed, "results": results}


SEED0 = run_result(0, 0.60, {"a [ppo.kl.target=0.1]": (0.1, 0.62), "a [ppo.kl.target=1.0]": (0.5, 0.66),
                             "b [ppo.kl.target=0.1]": (0.05, 0.61), "b [ppo.kl.target=1.0]": (0.25, 0.63)})
SEED1 = run_result(1, 0.62, {"a [ppo.kl.target=0.1]": (0.2, 0.64), "a [ppo.kl.target=1.0]": (0.4, 0.70),
                             "b [ppo.kl.target=0.1]": (0.1, 0.62), "b [ppo.kl.target=1.0]": (0.3, 0.66)})


def test_frontiers_join_an_arms_runs_and_the_start():
    assert frontiers(SEED0) == {"a": [(0.0, 0.60), (0.1, 0.62), (0.5, 0.66)],
                                "b": [(0.0, 0.60), (0.05, 0.61), (0.25, 0.63)]}
    assert kl_ranges([frontiers(SEED0), frontiers(SEED1)]) == {"a": (0.4, 0.5), "b": (0.25, 0.3)}


def test_matched_kl_pairs_within_seeds_and_counts_only_seeds_that_reach_the_kl():
    table = matched_kl([frontiers(SEED0), frontiers(SEED1)], [("a", "b")], [0.1, 0.28])
    at_01 = table["a − b @ KL 0.1"]
    # seed 0: a 0.62; b 0.61 + (0.63 - 0.61) * 0.05 / 0.20 = 0.615 -> +0.005
    # seed 1: a 0.62 + (0.64 - 0.62) * 0.1 / 0.2 = 0.63; b 0.62 -> +0.010
    assert at_01["setup's gold"]["mean"] == pytest.approx((0.62 + 0.63) / 2)
    assert at_01["baseline's gold"]["mean"] == pytest.approx((0.615 + 0.62) / 2)
    assert at_01["setup − baseline"]["mean"] == pytest.approx(0.0075)
    assert at_01["setup − baseline"]["half_width"] == pytest.approx(T95_1 * 0.005 / 2, rel=1e-3)
    # KL 0.28: b's frontier on seed 0 tops out at 0.25, so only seed 1 counts
    # seed 1: a 0.64 + (0.70 - 0.64) * 0.08 / 0.2 = 0.664; b 0.62 + (0.66 - 0.62) * 0.18 / 0.2 = 0.656
    at_028 = table["a − b @ KL 0.28"]
    assert at_028["setup − baseline"]["n"] == 1 and at_028["setup − baseline"]["mean"] == pytest.approx(0.008)


def write_sweep(directory):
    """The two seeds above as a KL-budget multirun: one job per (seed, target), as stage=pipeline writes them."""
    for job, (result, target) in enumerate([(r, t) for r in (SEED0, SEED1) for t in ("0.1", "1.0")]):
        rows = {"sft (start)": result["results"]["sft (start)"],
                **{s.split(" [")[0]: row for s, row in result["results"].items() if s.endswith(f"={target}]")}}
        job_dir = directory / str(job)
        (job_dir / ".hydra").mkdir(parents=True)
        (job_dir / ".hydra" / "overrides.yaml").write_text(f"- seed={result['seed']}\n- ppo.kl.target={target}\n")
        (job_dir / "result.json").write_text(json.dumps({
            "seed": result["seed"], "results": rows, "setups": list(rows), "columns": ["KL to SFT", "gold (sampled)"],
            "artifacts": {s: {"ppo": f"/cache/ppo-{s}-{result['seed']}-{target}"} for s in rows if s != "sft (start)"},
            "code_versions": {s: {"ppo": "abc"} for s in rows if s != "sft (start)"}}))


def test_stage_compare_writes_the_matched_kl_table(make_debug_cfg, tmp_path):
    write_sweep(tmp_path)
    run(make_debug_cfg("stage=compare", f"compare.dir={tmp_path}", "compare.matched_kl.at=[0.1]",
                       "compare.matched_kl.pairs=[[a,b]]"))
    with open(tmp_path / "compare_matched_kl.csv") as handle:
        rows = {(r["contrast"], r["metric"]): r for r in csv.DictReader(handle)}
    assert float(rows[("a − b @ KL 0.1", "setup − baseline")]["mean"]) == pytest.approx(0.0075)
    assert "Gold at matched KL" in (tmp_path / "compare.md").read_text()
    assert (tmp_path / "matched_kl.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="compare.matched_kl.pairs: no arm 'c'"):
        run(make_debug_cfg("stage=compare", f"compare.dir={tmp_path}", "compare.matched_kl.at=[0.1]",
                           "compare.matched_kl.pairs=[[a,c]]"))


@pytest.mark.parametrize("overrides,key", [
    (["compare.matched_kl.at=[0.0]"], "compare.matched_kl.at.0"),
    (["compare.matched_kl.at=[0.1]", "compare.matched_kl.pairs=[[a]]"], "compare.matched_kl.pairs.0"),
    (["compare.matched_kl.at=[0.1]"], "compare.matched_kl.pairs"),  # nothing to compare
])
def test_matched_kl_config_errors_name_the_key(overrides, key, make_debug_cfg, tmp_path):
    from pairwise_rl.config import validate
    with pytest.raises(ConfigError, match=f"^{key}:"):
        validate(make_debug_cfg("stage=compare", f"compare.dir={tmp_path}", *overrides))
