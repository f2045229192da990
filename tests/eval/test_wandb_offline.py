"""The offline W&B run files of a real (debug-size) PPO run, read back: metrics, tags, config, media."""

import json
import struct
from pathlib import Path

import pytest
from wandb.proto import wandb_internal_pb2

from pairwise_rl.cli import run
from pairwise_rl.pipeline import COMPLETE, stage_metrics
from pairwise_rl.files import read_json
from pairwise_rl.eval.wandb_offline import BLOCK, FILE_HEADER, RECORD_HEADER, _payloads, offline_runs, read_offline_run


def _frame(payloads):
    """Write payloads in the LevelDB-log framing, splitting records across 32 KiB blocks as W&B does."""
    out = bytearray(FILE_HEADER.pack(b":W&B", 0xBEE1, 0))
    for payload in payloads:
        rest, first = payload, True
        while True:
            left = BLOCK - len(out) % BLOCK
            if left < RECORD_HEADER.size:
                out += b"\0" * left
                continue
            room = left - RECORD_HEADER.size
            chunk, rest = rest[:room], rest[room:]
            kind = (1 if first else 4) if not rest else (2 if first else 3)
            out += RECORD_HEADER.pack(0, len(chunk), kind) + chunk
            first = False
            if not rest:
                break
    return bytes(out)


def test_block_reader_reassembles_records_split_across_blocks():
    payloads = [b"a" * 10, b"b" * 70_000, b"c" * (BLOCK - 40), b"d"]  # one spans three blocks; one lands at a trailer
    assert list(_payloads(_frame(payloads))) == payloads
    with pytest.raises(ValueError, match="not a W&B"):
        list(_payloads(b"XXXX" + struct.pack("<HB", 1, 0)))


def test_offline_wandb_run_holds_metrics_tags_config_and_media(make_debug_cfg, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_debug_cfg("stage=ppo", "ppo=pairwise", "rm=bt", "logger=wandb", "logger.tags=[smoke]",
                         "ppo.iterations=2", "logger.table_rows=5", "rm.max_steps=4")
    out = run(cfg)
    rm_dir = Path(read_json(out / COMPLETE)["needs"]["rm"])
    # SFT came from the shared cache; the RM (its own step budget) and PPO were built here, each one W&B run
    rm_runs, ppo_runs = offline_runs(rm_dir), offline_runs(out)
    assert len(rm_runs) == 1 and len(ppo_runs) == 1, (rm_runs, ppo_runs)

    rm_logged = read_offline_run(rm_runs[0])
    assert {"stage=rm", "rm=bt"} <= set(rm_logged.tags) and rm_logged.config["rm.max_steps"] == 4
    assert len(rm_logged.metric("train/loss")) == 4
    image = rm_logged.summary["rm/reliability"]
    assert image["_type"] == "images/separated" or image["_type"] == "image-file", image
    assert rm_logged.summary["rm/eval_pairs"]["nrows"] == 5

    logged = read_offline_run(ppo_runs[0])

    assert {"smoke", "stage=ppo", "rm=bt", "ppo=pairwise", "anchor=sft_greedy", "seed=0"} <= set(logged.tags)
    assert logged.group == "default"
    assert logged.config["ppo.reward"] == "anchor" and logged.config["ppo.iterations"] == 2
    assert logged.config["rm.mode"] == "bt" and logged.config["seed"] == 0
    golds = logged.metric("train/gold/mean")
    assert len(golds) == 2 and all(0.0 <= g <= 1.0 for g in golds)
    assert len(logged.metric("train/kl/sequence")) == 2
    # final metrics and the sample table are in the summary; the table's file is in the run directory
    assert logged.summary["final/gold_sampled/all"] == pytest.approx(stage_metrics(out)["gold_sampled/all"])
    table = logged.summary["samples/sft_vs_ppo"]
    assert table["_type"] == "table-file" and table["nrows"] == 5
    columns = json.loads((ppo_runs[0] / "files" / table["path"]).read_text())["columns"]
    assert {"prompt", "sft", "ppo", "ppo_gold", "ppo_reward", "ppo_kl"} <= set(columns)
