"""The RM stage end to end, both modes, through the CLI's run()."""

import pytest

from pairwise_rl.cli import run
from pairwise_rl.eval.io import read_json, read_jsonl
from pairwise_rl.pipeline import COMPLETE, stage_metrics
from pairwise_rl.rewards import load_reward_model
from pairwise_rl.stages.common import HF_DIR


@pytest.mark.parametrize("mode", ["bt", "generative"])
def test_rm_stage_trains_saves_and_evaluates(mode, make_debug_cfg):
    out = run(make_debug_cfg("stage=rm", f"rm={mode}"))
    judge = load_reward_model(out / HF_DIR)
    assert judge.mode == mode
    pairs_dir = read_json(out / COMPLETE)["needs"]["pairs"]
    pairs = read_jsonl(f"{pairs_dir}/train_pairs.jsonl")
    assert len(pairs) == 64 and all(p["chosen"] != p["rejected"] for p in pairs)
    assert stage_metrics(pairs_dir)["train/pairs"] == 64
    metrics = stage_metrics(out)
    for name in ("accuracy", "nll", "brier", "ece", "annotator_accuracy"):
        assert 0.0 <= metrics[name] <= (10.0 if name == "nll" else 1.0), name
    # a 20-step debug policy rarely answers parsably, so gold orderings (hence gold_accuracy) may not exist
    assert 0.0 <= metrics.get("gold_accuracy", 0.5) <= 1.0
    assert ("position_consistency" in metrics) == (mode == "generative")
    rows = read_jsonl(out / "eval_pairs.jsonl")
    assert len(rows) == metrics["eval_pairs"] and {"y1", "y2", "p_y1_beats_y2", "annotator_p_y1"} <= set(rows[0])
    assert (out / "reliability.png").stat().st_size > 1000
    assert read_json(out / "reliability.json")["count"]


def test_rm_compare_prints_both_modes_side_by_side(make_debug_cfg, capsys):
    cfg = make_debug_cfg("stage=rm_compare")
    results = run(cfg)
    assert set(results) == {"bt", "generative"}
    printed = capsys.readouterr().out
    assert "position_consistency" in printed and "ece" in printed
    assert read_json(f"{cfg.paths.output_dir}/rm_compare.json").keys() == {"bt", "generative"}
    # both modes trained on one pairs artifact
    needs = [read_json(f"{path}/{COMPLETE}")["needs"] for path in _rm_dirs(cfg)]
    assert needs[0]["pairs"] == needs[1]["pairs"] and needs[0]["sft"] == needs[1]["sft"]


def _rm_dirs(cfg):
    from pairwise_rl.pipeline import artifact_dir
    from pairwise_rl.stages.common import with_values

    return [artifact_dir(with_values(cfg, {"rm.mode": mode}), "rm") for mode in ("bt", "generative")]


def test_rm_stage_trains_on_a_human_preference_file_without_an_sft_policy(make_cfg, tmp_path):
    import gzip
    import json

    rows = []
    for i in range(80):
        prompt = f"\n\nHuman: Is {i} even?\n\nAssistant:"
        right, wrong = ("Yes." if i % 2 == 0 else "No."), ("No." if i % 2 == 0 else "Yes.")
        rows.append({"chosen": f"{prompt} {right}", "rejected": f"{prompt} {wrong}"})
    path = tmp_path / "hh.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    out = run(make_cfg("stage=rm", "data=hh_rlhf", f"data.path={path}", "debug=fast", "rm.max_steps=6",
                       "data.test_fraction=0.25", "data.val_fraction=0.1"))
    needs = read_json(out / COMPLETE)["needs"]
    assert set(needs) == {"pairs"}  # a preference dataset needs no SFT policy
    pairs = stage_metrics(needs["pairs"])
    assert pairs["data/rows"] == 80 and pairs["data/kept"] == 80
    assert pairs["train/pairs"] + pairs["val/pairs"] + pairs["test/pairs"] == 80
    test_pairs = read_jsonl(f"{needs['pairs']}/test_pairs.jsonl")
    assert test_pairs[0]["prompt"].endswith("\n\nAssistant:") and test_pairs[0]["task"] == "hh_rlhf"
    metrics = stage_metrics(out)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and "annotator_accuracy" not in metrics  # no oracle on human data
    assert load_reward_model(out / HF_DIR).mode == "bt"
