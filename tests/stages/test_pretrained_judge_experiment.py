"""experiments/pretrained_judge.yaml at debug size: every setup (the main comparison, the RM-only scaling points, the
random-weight judges) through the pipeline on a tiny Llama with the real SmolLM2 tokenizer and chat template, then
the compare command its header documents. The real model cannot run in tests; its tokenizer and formats can."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from pairwise_rl.cli import run
from pairwise_rl.comparison.figures import scaling_curves
from pairwise_rl.comparison.load import load_results
from pairwise_rl.files import read_json, read_jsonl
from pairwise_rl.models.chat import uses_chat_prompts
from pairwise_rl.models.factory import load_tokenizer
from pairwise_rl.pipeline import COMPLETE
from pairwise_rl.stages.common import HF_DIR
from pairwise_rl.tasks.base import load_task
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "smollm2_tokenizer"
EXPERIMENT = ROOT / "experiments" / "pretrained_judge.yaml"
BEFORE_TRAINING = ROOT / "docs" / "results" / "pretrained_judge" / "before_training.py"
COLLECTED = 64  # debug=fast's rm.num_train_pairs

# The experiment at debug size takes about a minute (ten setups, a 49k-token vocabulary): `make test-all`. Its fast
# twins in `make test`: tests/test_config.py composes and validates it; rm.pairs_used, rm.init and last_stage: rm
# run in tests/stages/test_rm.py and test_compare.py; the real tokenizer and chat template in
# tests/stages/test_real_data_pipeline.py.
pytestmark = pytest.mark.slow


def debug_sized(cfg):
    """The experiment's setups with their data sizes scaled from 2,000 collected pairs to debug's 64."""
    with open_dict(cfg):
        cfg.rm.pairs_used = COLLECTED // 2
        for setup in cfg.pipeline.setups:
            if "rm.pairs_used" in setup.overrides:
                setup.overrides["rm.pairs_used"] = setup.overrides["rm.pairs_used"] * COLLECTED // 2000
                setup.overrides["rm.max_steps"] = 3
    return cfg


def documented_compare_pairs() -> str:
    """The compare.pairs argument of the command in the experiment file's header."""
    return re.search(r"'(compare\.pairs=\[.*\])'", EXPERIMENT.read_text()).group(1)


@pytest.fixture(scope="module")
def experiment_run(tmp_path_factory):
    from tests.conftest import compose_config

    tmp = tmp_path_factory.mktemp("pretrained_judge")
    cfg = debug_sized(compose_config(["experiment=pretrained_judge", "debug=fast", "model=tiny_llama",
                                      f"model.tokenizer={FIXTURE}", "model.chat_template=true",
                                      "eval.num_prompts=9"], tmp))
    with open_dict(cfg):
        cfg.paths.cache_dir = str(tmp / "artifacts")
        cfg.paths.output_dir = str(tmp / "multirun" / "0")
    results = run(cfg)
    return cfg, results, tmp / "multirun"


def test_every_setup_runs_its_stages_and_the_rm_only_points_stop_at_the_rm(experiment_run):
    cfg, results, sweep = experiment_run
    result = read_json(sweep / "0" / "result.json")
    names = [s.name for s in cfg.pipeline.setups]
    assert result["setups"] == ["sft (start)", *names]
    for name in names:
        stages = set(result["artifacts"][name])
        row = results[name]
        assert row["RM accuracy"] is not None and row["RM ECE"] is not None
        assert (row["RM position consistency"] is not None) == name.startswith(("generative", "pairwise"))
        if name in ("traditional", "pairwise_rl"):
            assert stages == {"sft", "rm", "ppo", "evaluate"} and row["gold (sampled)"] is not None
        else:
            assert stages == {"sft", "rm"} and row["gold (sampled)"] is None and "PPO s / iteration" not in row
    pairs = {name: results[name]["RM train pairs"] for name in names}
    assert pairs == {"traditional": 32, "pairwise_rl": 32, "bt_250": 8, "generative_250": 8, "bt_500": 16,
                     "generative_500": 16, "bt_1k_random": 32, "generative_1k_random": 32, "bt_2k": 64,
                     "generative_2k": 64}
    # every RM of a seed reads the one collection
    assert len({read_json(Path(result["artifacts"][n]["rm"]) / COMPLETE)["needs"]["pairs"] for n in names}) == 1
    for name in names:
        rm_cfg = OmegaConf.load(Path(result["artifacts"][name]["rm"]) / "config.yaml").rm
        assert rm_cfg.init == ("random" if name.endswith("_random") else "sft")


def test_the_real_tokenizer_reads_chat_prompts_and_single_token_verdicts(experiment_run):
    cfg, _, sweep = experiment_run
    result = read_json(sweep / "0" / "result.json")
    tokenizer = load_tokenizer(str(Path(result["artifacts"]["pairwise_rl"]["sft"]) / HF_DIR))
    assert uses_chat_prompts(tokenizer) and tokenizer.pad_token_id == tokenizer.eos_token_id == 2
    assert [tokenizer.encode(v, add_special_tokens=False) for v in cfg.rm.verdict_tokens] == [[49], [50]]
    assert "Which answer is better, A or B?" in cfg.rm.template


def test_the_exported_samples_carry_the_gold_the_digits_judge_gives_their_text(experiment_run):
    cfg, _, sweep = experiment_run
    result = read_json(sweep / "0" / "result.json")
    gold = load_task(cfg).gold
    for setup in ("traditional", "pairwise_rl"):
        rows = read_jsonl(Path(result["artifacts"][setup]["ppo"]) / "samples.jsonl")
        assert {r["model"] for r in rows} == {"sft", "ppo"} and len(rows) == 2 * 9 * (2 + 1)  # sampled x2, greedy
        assert all(r["gold"] == gold.score(r["prompt"], r["response"]) for r in rows)
        assert not any("<|im_end|>" in r["response"] for r in rows)


def test_the_documented_compare_contrasts_both_modes_with_and_without_pretraining(experiment_run, make_debug_cfg):
    _, results, sweep = experiment_run
    run(make_debug_cfg("stage=compare", f"compare.dir={sweep}", documented_compare_pairs()))
    with open(sweep / "compare_paired.csv") as handle:
        paired = {(r["setup"], r["baseline"], r["metric"]): r for r in csv.DictReader(handle)}
    for setup, base in (("generative_1k_random", "bt_1k_random"), ("generative_250", "bt_250"),
                        ("pairwise_rl", "traditional")):
        diff = results[setup]["RM accuracy"] - results[base]["RM accuracy"]
        assert float(paired[(setup, base, "RM accuracy")]["mean"]) == pytest.approx(diff)
    assert float(paired[("pairwise_rl", "traditional", "gold (sampled)")]["mean"]) == pytest.approx(
        results["pairwise_rl"]["gold (sampled)"] - results["traditional"]["gold (sampled)"])
    curves = scaling_curves(load_results(sweep))["RM accuracy on held-out pairs"]
    # pretrained (init=sft) judges on four sizes, the random-weight ones a line of their own at one size
    assert [x for x, _, _ in sorted(curves["generative: RM accuracy"])] == [8, 16, 32, 64]
    assert [(x, m) for x, m, _ in curves["generative (init=random): RM accuracy"]] == [
        (32, results["generative_1k_random"]["RM accuracy"])]
    assert (sweep / "rm_scaling.png").stat().st_size > 1000


def test_the_documented_before_training_summary_reads_every_judge_untrained(experiment_run, capsys):
    """docs/results/pretrained_judge/before_training.py on the run: each number is the RM's own pre-training
    evaluation (one seed here, so the mean is that value)."""
    _, _, sweep = experiment_run
    spec = importlib.util.spec_from_file_location("before_training", BEFORE_TRAINING)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(sweep)
    lines = {line.split("  ")[1].strip(): line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(lines) == set(script.SETUPS)
    artifacts = read_json(sweep / "0" / "result.json")["artifacts"]
    for label, setup in script.SETUPS.items():
        before = read_json(Path(artifacts[setup]["rm"]) / "evaluate_before_training.json")["result"]
        assert f"accuracy {before['accuracy']:.3f}" in lines[label]
        assert ("gold accuracy" in lines[label]) == ("gold_accuracy" in before)
        assert ("position consistency" in lines[label]) == label.startswith("generative")
