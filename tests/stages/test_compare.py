"""stage=compare over a real (debug-size) two-seed run of pairwise_vs_bt."""

import csv

from omegaconf import open_dict

from pairwise_rl.cli import run


def test_compare_aggregates_seeds_into_tables_and_plots(make_debug_cfg, tmp_path):
    sweep = tmp_path / "multirun"
    for seed in (0, 1):
        cfg = make_debug_cfg("experiment=pairwise_vs_bt", f"seed={seed}")
        with open_dict(cfg):
            cfg.paths.output_dir = str(sweep / str(seed))
        run(cfg)
    summary = run(make_debug_cfg("stage=compare", f"compare.dir={sweep}"))
    assert set(summary) == {"sft (start)", "traditional", "pairwise_rl"}
    assert summary["traditional"]["gold (sampled)"]["n"] == 2
    for metric in ("gold (sampled)", "reward (own RM)", "KL to SFT", "RM accuracy", "RM ECE"):
        assert summary["pairwise_rl"][metric]["n"] == 2, metric
    with open(sweep / "compare.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["setup"] for r in rows} == set(summary) and all(r["n"] == "2" for r in rows)
    assert "±" in (sweep / "compare.md").read_text()
    for plot in ("gold_vs_step.png", "gold_vs_kl.png", "rm_reliability.png"):
        assert (sweep / plot).stat().st_size > 1000
