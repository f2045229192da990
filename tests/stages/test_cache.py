"""stage=cache through the CLI entry point: the listing, a dry run and a clean on a real debug pipeline's cache."""

import json
from pathlib import Path

from omegaconf import open_dict

from pairwise_rl.cli import run
from pairwise_rl.eval.io import read_json
from pairwise_rl.pipeline import COMPLETE


def cache_cfg(make_cfg, cache_dir, *overrides):
    cfg = make_cfg("stage=cache", *overrides)
    with open_dict(cfg):
        cfg.paths.cache_dir = str(cache_dir)
    return cfg


def test_stage_cache_lists_then_cleans_only_what_nothing_needs(real_cache, make_cfg, capsys):
    cache_dir, artifacts = real_cache
    listed = run(cache_cfg(make_cfg, cache_dir))
    names = {a["name"] for a in listed["artifacts"]}
    assert {p for setup in artifacts.values() for p in setup.values()} <= names
    out = capsys.readouterr().out
    assert artifacts["traditional"]["sft"] in out and "(this)" in out
    assert read_json(Path(make_cfg().paths.output_dir) / "cache.json")["artifacts"] == listed["artifacts"]

    # The traditional PPO and its evaluation were built by other code; so was the shared SFT policy.
    trad = artifacts["traditional"]
    for name in (trad["ppo"], trad["evaluate"], trad["sft"]):
        marker = read_json(cache_dir / name / COMPLETE)
        marker["built_by"]["code_version"] = "f" * 12
        (cache_dir / name / COMPLETE).write_text(json.dumps(marker))

    dry = run(cache_cfg(make_cfg, cache_dir, "cache.clean=[stale]", "cache.dry_run=true"))
    assert {a["name"] for a in dry["would_remove"]} == {trad["ppo"], trad["evaluate"]}
    assert {k["name"]: k["why"] for k in dry["kept"]}[trad["sft"]].startswith("needed by ")
    assert all((cache_dir / name).exists() for name in names)
    assert "OTHER" in capsys.readouterr().out

    cleaned = run(cache_cfg(make_cfg, cache_dir, "cache.clean=[stale]"))
    assert {a["name"] for a in cleaned["removed"]} == {trad["ppo"], trad["evaluate"]}
    assert not (cache_dir / trad["ppo"]).exists() and (cache_dir / trad["sft"]).exists()
    assert (cache_dir / artifacts["pairwise_rl"]["ppo"]).exists()
