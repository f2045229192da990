"""The real-data path end to end, fast: a tiny Llama on the real SmolLM2 tokenizer and chat template (pad = eos),
SFT on a small HH-RLHF-format preference file -> both RMs -> both PPO setups, and PPO on prompt-only files.

The fixture is written here (the repo ships no HH-RLHF rows): prompts in HH's transcript format whose chosen
answer is polite and whose rejected answer is rude, so the pairs carry a learnable preference.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from pairwise_rl.cli import run
from pairwise_rl.config import ConfigError
from pairwise_rl.data.readers import DataError
from pairwise_rl.errors import DataSourceError, report
from pairwise_rl.files import read_json, read_jsonl
from pairwise_rl.models.factory import load_tokenizer
from pairwise_rl.pipeline import COMPLETE, stage_metrics
from pairwise_rl.stages.common import HF_DIR
from pairwise_rl.tasks.base import load_task

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "smollm2_tokenizer"
TOPICS = ["the weather", "my garden", "a recipe for soup", "learning to swim", "fixing a bike", "a birthday gift",
          "the train schedule", "painting a fence", "a good book", "saving money", "a chess opening",
          "my cat", "the museum", "a headache", "planting tomatoes", "a job interview"]


def write_hh_fixture(path: Path, rows: int = 96, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = []
    for i in range(rows):
        topic = f"{rng.choice(TOPICS)} (question {i})"
        prompt = f"\n\nHuman: Can you help me with {topic}?\n\nAssistant:"
        chosen = f" Of course, happy to help with {topic}. Here is a short, kind answer."
        rejected = f" No. {topic.capitalize()} is boring and so are you."
        lines.append(json.dumps({"chosen": prompt + chosen, "rejected": prompt + rejected}))
    path.write_text("\n".join(lines) + "\n")
    return path


def real_tokenizer_overrides(data_path: Path, *extra: str) -> list:
    return ["data=hh_rlhf", f"data.path={data_path}", f"model.tokenizer={FIXTURE}", "model.chat_template=true",
            "data.max_prompt_tokens=48", "data.max_response_tokens=20", "data.num_val_prompts=4",
            "generation.max_new_tokens=8", "eval.num_prompts=6", "eval.samples_per_prompt=2",
            "rm.num_eval_pairs=16", "ppo.anchor=reference", *extra]


@pytest.fixture(scope="module")
def hh_file(tmp_path_factory) -> Path:
    return write_hh_fixture(tmp_path_factory.mktemp("hh") / "hh.jsonl")


def test_the_task_interface_serves_every_role_from_a_preference_file(hh_file, make_cfg):
    task = load_task(make_cfg(*real_tokenizer_overrides(hh_file)))
    pairs = task.preference_pairs()
    assert sum(len(v) for v in pairs.values()) == 96 - 0 and task.gold is None
    demos, rl = task.sft_demos(), task.rl_prompts()
    assert [d.prompt for d in demos] == [r.prompt for r in rl] == [p.prompt for p in pairs["train"]]
    assert all(d.reference == p.chosen for d, p in zip(demos, pairs["train"]))  # chosen = the reference anchor
    held_out = {p.prompt for p in task.eval_prompts()} | {p.prompt for p in task.val_prompts()}
    assert held_out and not held_out & {p.prompt for p in rl}  # RL never sees an evaluation prompt
    assert len(task.eval_prompts()) <= 6 and len(task.val_prompts()) <= 4


@pytest.mark.parametrize("rm,variant", [("bt", "standard"), ("generative", "pairwise")])
def test_sft_rm_ppo_on_real_data_with_the_real_tokenizer(rm, variant, hh_file, make_debug_cfg):
    out = run(make_debug_cfg("stage=ppo", f"rm={rm}", f"ppo={variant}", *real_tokenizer_overrides(hh_file)))
    needs = read_json(out / COMPLETE)["needs"]
    sft = stage_metrics(needs["sft"])
    assert sft["trained"] == 1.0 and sft["demonstrations"] > 50 and "gold_sampled/all" not in sft
    tokenizer = load_tokenizer(str(Path(needs["sft"]) / HF_DIR))
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == 2  # pad = eos survives the export
    rm_metrics = stage_metrics(needs["rm"])
    assert 0.0 <= rm_metrics["accuracy"] <= 1.0 and 0 < rm_metrics["eval_pairs"] <= 16  # rm.num_eval_pairs caps
    metrics = stage_metrics(out)
    assert metrics["rl_prompts"] > 50 and "gold_sampled/all" not in metrics
    assert metrics["kl_sampled"] == pytest.approx(metrics["kl_sampled"])  # finite
    rows = read_jsonl(out / "samples.jsonl")
    assert {r["model"] for r in rows} == {"sft", "ppo"}
    assert all(r["gold"] is None and r["reference"] for r in rows)  # no gold judge; the chosen answer as reference
    if variant == "pairwise":
        assert all(r["anchor"] == r["reference"] for r in rows)  # ppo.anchor=reference: the ground-truth anchor
        assert all(-0.5 <= r["reward"] <= 0.5 for r in rows)
    # every response ends where the policy emitted eos (= pad): no text after it, no pad inside the decoded text
    assert not any("<|im_end|>" in r["response"] for r in rows)


def test_ppo_on_a_prompt_only_file_with_and_without_references(hh_file, make_debug_cfg, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    train = load_task(make_debug_cfg(*real_tokenizer_overrides(hh_file))).rl_prompts()
    held_out = load_task(make_debug_cfg(*real_tokenizer_overrides(hh_file))).eval_prompts()
    rows = [{"question": p.prompt, "answer": f" A reference answer {i}."} for i, p in enumerate(train[:20])]
    rows += [{"question": p.prompt, "answer": "held out"} for p in held_out]  # dropped: they hash into test
    prompts.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    base = real_tokenizer_overrides(hh_file, f"data.rl_prompts.path={prompts}", "data.rl_prompts.prompt=question")

    out = run(make_debug_cfg("stage=ppo", "rm=bt", "ppo=pairwise", *base, "data.rl_prompts.reference=answer"))
    metrics = stage_metrics(out)
    assert metrics["rl_prompts"] == 20 and metrics["rl_prompts/skipped/held_out_prompt"] == len(held_out)

    out = run(make_debug_cfg("stage=ppo", "rm=bt", "ppo=pairwise", *base, "ppo.anchor=sft_greedy"))
    assert stage_metrics(out)["rl_prompts"] == 20
    with pytest.raises(ConfigError, match="ppo.anchor: .*data.rl_prompts.reference"):
        run(make_debug_cfg("stage=ppo", "rm=bt", "ppo=pairwise", *base))  # reference anchor, no reference field


def test_a_bad_prompt_row_is_named_by_file_row_and_field(hh_file, make_cfg, tmp_path):
    prompts = tmp_path / "bad_prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "fine", "reference": "ok"}) + "\n" +
                       json.dumps({"prompt": "", "reference": "ok"}) + "\n")
    cfg = make_cfg(*real_tokenizer_overrides(hh_file, f"data.rl_prompts.path={prompts}",
                                             "data.rl_prompts.reference=reference"), "data.on_bad_row=error")
    with pytest.raises(DataError, match=r"bad_prompts.jsonl, row 2, field 'prompt': empty"):
        load_task(cfg).rl_prompts()


def test_ppo_from_the_pretrained_model_without_sft(hh_file, make_debug_cfg):
    """sft.enabled=false: the starting policy is the configured model itself, exported untrained."""
    out = run(make_debug_cfg("stage=ppo", "rm=bt", "ppo=standard", "sft.enabled=false",
                             *real_tokenizer_overrides(hh_file)))
    sft_dir = Path(read_json(out / COMPLETE)["needs"]["sft"])
    assert stage_metrics(sft_dir)["trained"] == 0.0 and not (sft_dir / "checkpoints").exists()
    assert stage_metrics(out)["sft/response_length_sampled"] > 0
    assert torch.isfinite(torch.tensor(stage_metrics(out)["kl_sampled"]))


@pytest.mark.parametrize("content", ["", '{"prompt": "p", "chosen": "same", "rejected": "same"}\n'])
def test_an_empty_or_all_skipped_preference_file_is_one_named_error(content, make_cfg, tmp_path):
    """A zero-byte file (or one whose every row is skipped) is the project's own error naming the file, so the CLI
    prints it as one line with the fix, like every other bad file, instead of a traceback."""
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    cfg = make_cfg(*real_tokenizer_overrides(path), "data=jsonl", "data.on_bad_row=skip")
    with pytest.raises(DataSourceError, match=r"data.path=.*empty.jsonl: no train pairs left after reading \(0 rows"
                       ) as caught:
        load_task(cfg).preference_pairs()
    assert report(caught.value).splitlines()[1].startswith("fix: an empty file")
