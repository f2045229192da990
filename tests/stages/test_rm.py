"""The RM stage end to end, both modes, through the CLI's run()."""

import pytest
import torch

from pairwise_rl.cli import run
from pairwise_rl.files import read_json, read_jsonl
from pairwise_rl.pipeline import COMPLETE, stage_metrics
from pairwise_rl.rewards import load_reward_model
from pairwise_rl.models.factory import init_policy, load_causal_lm
from pairwise_rl.stages.common import HF_DIR
from pairwise_rl.eval.metrics import GROUP_RELIABILITY


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


@pytest.mark.parametrize("mode", ["bt", "generative"])
def test_a_bf16_lora_rm_learns(mode, make_debug_cfg):
    """bf16-mixed with LoRA: only the adapters (and a BT score head) train, under autocast. Its held-out numbers must
    move from the untrained ones (they did not while autocast kept the weights' first casts: modules/optim.py)."""
    out = run(make_debug_cfg("stage=rm", f"rm={mode}", "trainer.precision=bf16-mixed", "model.lora.enabled=true"))
    metrics = stage_metrics(out)
    assert read_json(out / COMPLETE)["numerics"]["precision"] == "bf16-mixed"
    assert metrics["nll"] != metrics["init/nll"] and 0 < metrics["trainable_param_fraction"] < 0.5


def test_rm_metrics_break_down_by_prompt_kind(make_debug_cfg):
    out = run(make_debug_cfg("stage=rm", "rm=generative"))
    metrics, kinds = stage_metrics(out), ("sort", "reverse", "add")
    by_kind = read_json(out / GROUP_RELIABILITY)
    assert set(by_kind) == set(kinds)
    counts = {kind: metrics[f"{kind}/pairs"] for kind in kinds}
    assert sum(counts.values()) == metrics["eval_pairs"] and all(counts.values())
    # the overall accuracy is the pair-weighted mean of the per-kind ones; each diagram holds its kind's pairs
    assert metrics["accuracy"] == pytest.approx(
        sum(metrics[f"{kind}/accuracy"] * counts[kind] for kind in kinds) / metrics["eval_pairs"])
    assert all(sum(by_kind[kind]["count"]) == counts[kind] for kind in kinds)
    assert all(0.0 <= metrics[f"{kind}/position_consistency"] <= 1.0 for kind in kinds)


def test_rm_init_fresh_starts_from_the_models_own_initialisation_not_the_sft_policy(make_debug_cfg):
    cfg = make_debug_cfg("stage=rm", "rm=generative", "rm.init=fresh")
    out = run(cfg)
    assert out != run(make_debug_cfg("stage=rm", "rm=generative"))  # its own artifact
    start = load_causal_lm(str(out / "init")).state_dict()
    expected = init_policy(cfg.model, cfg.seed)[0].state_dict()
    sft = load_causal_lm(f"{read_json(out / COMPLETE)['needs']['sft']}/{HF_DIR}").state_dict()
    assert all(torch.equal(start[k], expected[k]) for k in expected)
    assert not all(torch.equal(start[k], sft[k]) for k in sft)


def test_a_yes_no_judge_is_saved_and_loaded_with_its_verdict_format(make_debug_cfg):
    out = run(make_debug_cfg("stage=rm", "rm=generative", "rm.verdict_format=yes_no", "rm.verdict_tokens=[y,n]",
                             "rm.template='{prompt}\nA:{a}\nB:{b}\nB better?'"))
    judge = load_reward_model(out / HF_DIR)
    assert judge.verdict_format == "yes_no" and judge.verdict_ids == tuple(
        judge.tokenizer.convert_tokens_to_ids(["n", "y"]))  # (A wins, B wins) = (no, yes)
    assert 0.0 <= stage_metrics(out)["accuracy"] <= 1.0


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


def test_rm_pairs_used_trains_on_the_first_pairs_of_one_collection(make_debug_cfg):
    """A scaling sweep's sizes share one collection: rm.pairs_used=24 of the 64 collected trains the same RM, bit
    for bit, as collecting only 24 (collection is prefix-stable), and reads the 64-pair artifact, not a new one."""
    cut = run(make_debug_cfg("stage=rm", "rm.pairs_used=24"))
    alone = run(make_debug_cfg("stage=rm", "rm.num_train_pairs=24"))
    cut_pairs, alone_pairs = (read_json(out / COMPLETE)["needs"]["pairs"] for out in (cut, alone))
    assert cut_pairs == read_json(run(make_debug_cfg("stage=rm")) / COMPLETE)["needs"]["pairs"] != alone_pairs
    collected = read_jsonl(f"{cut_pairs}/train_pairs.jsonl")
    assert len(collected) == 64 and collected[:24] == read_jsonl(f"{alone_pairs}/train_pairs.jsonl")
    assert stage_metrics(cut)["train_pairs"] == stage_metrics(alone)["train_pairs"] == 24
    a, b = (load_reward_model(out / HF_DIR).model.state_dict() for out in (cut, alone))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_rm_pairs_used_beyond_the_split_names_the_file(make_cfg, tmp_path):
    from pairwise_rl.data.records import Preference
    from pairwise_rl.stages.rm import training_pairs

    pairs = [Preference(prompt=f"p{i}", chosen="a", rejected="b") for i in range(5)]
    cfg = make_cfg("rm.pairs_used=3")
    assert training_pairs(cfg, tmp_path, {"train": pairs}) == pairs[:3]
    with pytest.raises(ValueError, match=r"rm.pairs_used=6, but .*train_pairs.jsonl holds only 5 pairs"):
        training_pairs(make_cfg("rm.pairs_used=6"), tmp_path, {"train": pairs})
