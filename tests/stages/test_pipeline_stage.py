"""stage=pipeline with the pairwise_vs_bt experiment: both setups from one SFT policy, one table, cached reruns."""

from pathlib import Path

from pairwise_rl.cli import run
from pairwise_rl.files import read_json
from pairwise_rl.pipeline import COMPLETE


def test_pairwise_vs_bt_shares_the_sft_policy_and_reruns_from_the_cache(make_debug_cfg, capsys):
    cfg = make_debug_cfg("experiment=pairwise_vs_bt")
    results = run(cfg)
    assert list(results) == ["sft (start)", "traditional", "pairwise_rl"]
    result = read_json(Path(cfg.paths.output_dir) / "result.json")
    artifacts = result["artifacts"]
    assert artifacts["traditional"]["sft"] == artifacts["pairwise_rl"]["sft"]
    assert artifacts["traditional"]["rm"] != artifacts["pairwise_rl"]["rm"]
    assert result["config"]["experiment_name"] == "pairwise_vs_bt"
    assert "traditional" in capsys.readouterr().out
    for plot in ("gold_vs_step.png", "gold_vs_kl.png", "rm_reliability.png"):  # the run's own plots
        assert (Path(cfg.paths.output_dir) / plot).stat().st_size > 1000

    built = {p: read_json(Path(p) / COMPLETE)["finished_at"] for setup in artifacts.values() for p in setup.values()}
    used = {p: (Path(p) / COMPLETE).stat().st_mtime_ns for p in built}
    assert run(cfg) == results
    assert {p: read_json(Path(p) / COMPLETE)["finished_at"] for p in built} == built  # nothing rebuilt
    assert all((Path(p) / COMPLETE).stat().st_mtime_ns > used[p] for p in built)  # each served: last use moves
