"""The independent judge's arithmetic (hand-computed) and its stages: gold on digits, gold_rm on a dataset."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pairwise_rl.cli import run
from pairwise_rl.files import read_json, read_jsonl
from pairwise_rl.eval.judge import judge_kind, per_prompt_interval, wins
from pairwise_rl.pipeline import COMPLETE, artifact_dir, stage_metrics
from pairwise_rl.stages.common import with_values
from pairwise_rl.stages.evaluate import judge_config
from pairwise_rl.stages.pipeline import for_setup, setups
from pairwise_rl.stages.pairs import read_pairs
from tests.stages.test_real_data_pipeline import real_tokenizer_overrides, write_hh_fixture


def test_wins_count_ties_as_half():
    assert wins(torch.tensor([0.9, 0.5, 0.1, 0.50001])).tolist() == [1.0, 0.5, 0.0, 1.0]


def test_interval_is_over_prompts_not_samples():
    # prompt a: samples 1, 0 -> 0.5; prompt b: 1, 1 -> 1.0; prompt c: 0, 0 -> 0.0
    stat = per_prompt_interval(["a", "a", "b", "b", "c", "c"], [1, 0, 1, 1, 0, 0])
    assert stat["n"] == 3 and stat["mean"] == pytest.approx(0.5)
    # sd over prompt means {0.5, 1, 0} = 0.5; t(2) = 4.303; half width = 4.303 * 0.5 / sqrt(3)
    assert stat["half_width"] == pytest.approx(4.303 * 0.5 / math.sqrt(3))


def test_judge_kind_resolves_auto(make_cfg):
    assert judge_kind(make_cfg()) == "gold"
    assert judge_kind(make_cfg("data=hh_rlhf")) == "gold_rm"
    assert judge_kind(make_cfg("judge.name=/some/rm")) == "path"


def test_digits_pipeline_is_judged_by_gold_against_sft_and_reference(make_debug_cfg):
    results = run(make_debug_cfg("stage=pipeline"))
    (name, row), = [(k, v) for k, v in results.items() if k != "sft (start)"]
    assert 0.0 <= row["judge: win vs SFT"] <= 1.0 and 0.0 <= row["judge: win vs reference"] <= 1.0
    assert row["judge: score"] == pytest.approx(row["gold (sampled)"])  # the gold judge's score is gold
    assert results["sft (start)"]["judge: win vs SFT"] == 0.5  # the SFT policy against itself: all ties


def test_judge_none_skips_evaluation_in_the_pipeline(make_debug_cfg):
    results = run(make_debug_cfg("stage=pipeline", "judge.name=none"))
    (row,) = [v for k, v in results.items() if k != "sft (start)"]
    assert row["gold (sampled)"] is not None and row["judge: win vs SFT"] is None


@pytest.fixture(scope="module")
def hh_file(tmp_path_factory) -> Path:
    return write_hh_fixture(tmp_path_factory.mktemp("hh_judge") / "hh.jsonl", rows=120)


def test_gold_rm_trains_once_on_pairs_no_proxy_sees_and_judges_both_setups(hh_file, make_debug_cfg):
    overrides = ["stage=pipeline", "experiment=pairwise_vs_bt", *real_tokenizer_overrides(hh_file),
                 "data.judge_fraction=0.4", "trainer.progress_bar=none", "logger=csv"]
    cfg = make_debug_cfg(*overrides)
    results = run(cfg)
    assert {"traditional", "pairwise_rl"} <= set(results)
    # one judge for both setups (a BT judge, whatever each setup's rm.mode)
    judges = {artifact_dir(judge_config(with_values(cfg, {"rm.mode": m})), "judge") for m in ("bt", "generative")}
    (judge_dir,) = judges
    assert (judge_dir / COMPLETE).exists()
    pairs = read_pairs(Path(read_json(judge_dir / COMPLETE)["needs"]["pairs"]))
    judge_prompts = {p.prompt for p in pairs["judge"]}
    assert judge_prompts and not judge_prompts & {p.prompt for p in pairs["train"]}  # disjoint by prompt
    assert stage_metrics(judge_dir)["train_pairs"] == len(pairs["judge"])
    for setup in ("traditional", "pairwise_rl"):
        row = results[setup]
        assert 0.0 <= row["judge: win vs SFT"] <= 1.0 and 0.0 <= row["judge: win vs reference"] <= 1.0
        assert row["judge: score"] is not None and row["length (tokens)"] > 0
    evaluate_dirs = [artifact_dir(for_setup(cfg, setup), "evaluate") for setup in setups(cfg)]
    assert len(set(evaluate_dirs)) == 2 and all((d / COMPLETE).exists() for d in evaluate_dirs)
    metrics = stage_metrics(evaluate_dirs[0])
    assert metrics["ppo/win_vs_sft_sampled_ci95"] >= 0 and metrics["sft/win_vs_sft_sampled"] == 0.5
    rows = read_jsonl(evaluate_dirs[0] / "judged.jsonl")
    assert {"prompt", "reference", "sft_response", "ppo_response", "ppo_p_vs_sft", "ppo_p_vs_reference",
            "ppo_judge_score", "sft_p_vs_reference"} <= set(rows[0])
