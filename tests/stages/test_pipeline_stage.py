"""stage=pipeline with the pairwise_vs_bt experiment: both setups from one SFT policy, one table, cached reruns."""

from pathlib import Path

import pytest

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


def test_kl_reached_and_the_setups_that_stopped_short_of_their_target(caplog):
    from pairwise_rl.stages.pipeline import KL_REACHED, kl_reached, short_of_target, warn_short_of_target
    rows = {"traditional": {"KL to SFT": 0.24, "KL target": 0.3}, "pairwise_rl": {"KL to SFT": 0.12, "KL target": 0.3},
            "fixed_beta": {"KL to SFT": 0.5, "KL target": None}, "sft": {"KL to SFT": 0.0}}
    for row in rows.values():
        row[KL_REACHED] = kl_reached(row)
    assert rows["traditional"][KL_REACHED] == pytest.approx(0.8) and rows["pairwise_rl"][KL_REACHED] == pytest.approx(0.4)
    assert rows["fixed_beta"][KL_REACHED] is None and rows["sft"][KL_REACHED] is None
    assert short_of_target(rows) == ["pairwise_rl"]  # 0.4 < 0.5; 0.8 is not
    warn_short_of_target(rows)
    assert "pairwise_rl stopped short of its KL target: held-out KL 0.120 of 0.300" in caplog.text


@pytest.mark.slow  # 11 PPO setups, about 70 s. Twins in `make test`: test_config composes and validates the file;
# test_kl_reached_... (the table's KL rows), tests/stages/test_ppo.py's reward-transform test (the run summary)
def test_the_handicaps_experiment_runs_at_debug_size_and_its_compare_section_reads_it(make_debug_cfg):
    """experiments/handicaps.yaml end to end at debug size: every setup's table has the run-summary rows (KL target,
    KL / target, beta at the end, reward spread), each override reached its setup's PPO config, and stage=compare
    with the experiment's own metrics and pairs reads the run."""
    from omegaconf import OmegaConf
    cfg = make_debug_cfg("experiment=handicaps")
    results = run(cfg)
    setups = [s["name"] for s in cfg.pipeline.setups]
    assert list(results) == ["sft (start)", *setups]
    for name in setups:
        row = results[name]
        assert row["KL target"] == cfg.ppo.kl.target and row["KL / target"] == pytest.approx(
            row["KL to SFT"] / cfg.ppo.kl.target)
        assert row["beta at the end"] > 0 and row["reward spread (train)"] >= 0
    artifacts = read_json(Path(cfg.paths.output_dir) / "result.json")["artifacts"]
    ppo = {name: OmegaConf.load(Path(artifacts[name]["ppo"]) / "config.yaml").ppo for name in setups}
    assert ppo["pairwise_rl_old"].kl.horizon == 100 and ppo["pairwise_rl_old"].order_average == "probability"
    assert ppo["pairwise_rl"].kl.horizon == "auto" and ppo["pairwise_rl"].order_average == "log_odds"
    assert ppo["pairwise_rl_whiten"].reward_transform == "whiten" and ppo["traditional_critic_sft"].critic_init == "sft"
    assert artifacts["pairwise_rl"]["rm"] == artifacts["pairwise_rl_old"]["rm"]  # PPO-time choices: one judge
    compare = make_debug_cfg("stage=compare", f"compare.dir={cfg.paths.output_dir}", "experiment=handicaps")
    summary = run(compare)
    assert summary["pairwise_rl"]["reward spread (train)"]["n"] == 1
