"""The SFT stage end to end on CPU, through the same `run(cfg)` the CLI calls."""

from pairwise_rl.cli import run
from pairwise_rl.eval.history import read_history
from pairwise_rl.files import read_json, read_jsonl
from pairwise_rl.models.factory import load_causal_lm, load_tokenizer
from pairwise_rl.pipeline import COMPLETE, stage_metrics
from pairwise_rl.stages.common import HF_DIR
from pairwise_rl.tasks.digits import gold_score


def test_sft_debug_run_writes_checkpoint_samples_metrics_and_logs(make_cfg, caplog):
    caplog.set_level("INFO", logger="pairwise_rl.pipeline")
    out = run(make_cfg("debug=fast"))
    assert (out / COMPLETE).exists()
    model, tokenizer = load_causal_lm(str(out / HF_DIR)), load_tokenizer(str(out / HF_DIR))
    assert model.config.vocab_size == len(tokenizer)

    samples = read_jsonl(out / "samples.jsonl")
    assert {s["mode"] for s in samples} == {"sampled", "greedy"}
    assert set(samples[0]) >= {"task", "prompt", "response", "gold"}
    assert all(s["gold"] == gold_score(s["prompt"], s["response"]) for s in samples)  # re-derivable from the file

    metrics = read_json(out / "metrics.json")
    assert {"gold_sampled/all", "gold_greedy/all", "gold_sampled/sort"} <= set(metrics)
    history = read_history(out)
    assert any("train/loss" in r for r in history) and any("val/gold_sampled/all" in r for r in history)
    assert not (out / "checkpoints").exists()  # paths.keep_checkpoints=false: a complete artifact is never resumed
    assert "[sft] dropped its checkpoints" in caplog.text


def test_keep_checkpoints_keeps_the_newest_two_of_a_complete_artifact(make_cfg, caplog):
    caplog.set_level("INFO", logger="pairwise_rl.pipeline")
    out = run(make_cfg("debug=fast", "paths.keep_checkpoints=true"))
    assert sorted(p.name for p in (out / "checkpoints").glob("*.ckpt")) == ["step-000010.ckpt", "step-000020.ckpt"]
    assert "dropped its checkpoints" not in caplog.text


def test_sft_rerun_is_served_from_the_cache(make_cfg):
    cfg = make_cfg("debug=fast", "sft.max_steps=4")
    first = run(cfg)
    built = read_json(first / COMPLETE)["finished_at"]
    assert run(cfg) == first and read_json(first / COMPLETE)["finished_at"] == built


def test_sft_raises_held_out_gold_well_above_the_untrained_model(make_cfg):
    out = run(make_cfg("logger=csv", "trainer.progress_bar=none", "sft.max_steps=150", "sft.val_every=150",
                       "sft.checkpoint_every=150", "eval.num_prompts=60", "eval.greedy=false",
                       "data.digits.num_val_prompts=12"))
    metrics = stage_metrics(out)
    assert metrics["init/gold_sampled/all"] < 0.05
    assert metrics["gold_sampled/all"] > metrics["init/gold_sampled/all"] + 0.1
