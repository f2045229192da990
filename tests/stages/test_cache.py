"""stage=cache through the CLI entry point: the listing, a dry run and a clean on a real debug pipeline's cache."""

import json
import shutil
from pathlib import Path

from omegaconf import open_dict

from pairwise_rl.cli import run
from pairwise_rl.files import read_json
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


def test_drop_checkpoints_trims_a_cache_built_with_them_and_every_artifact_is_still_served(make_cfg, tmp_path, caplog):
    caplog.set_level("INFO", logger="pairwise_rl")
    # The state a cache from before paths.keep_checkpoints is in: complete artifacts holding their checkpoints,
    # beside an interrupted build that will resume from its own.
    rm_dir = run(make_cfg("debug=fast", "stage=rm", "paths.keep_checkpoints=true"))
    cache_dir = rm_dir.parent
    (sft_dir,) = cache_dir.glob("sft-*")
    partial = cache_dir / "sft-000000000000"
    shutil.copytree(sft_dir, partial)
    (partial / COMPLETE).unlink()
    sizes = {p.name: sum(f.stat().st_size for f in (p / "checkpoints").rglob("*") if f.is_file())
             for p in (sft_dir, rm_dir, partial)}
    assert all(size > 0 for size in sizes.values())

    listed = run(cache_cfg(make_cfg, cache_dir))
    assert {a["name"]: a["checkpoint_bytes"] for a in listed["artifacts"] if a["checkpoint_bytes"]} == sizes
    assert {a["name"].split("-")[0] for a in listed["artifacts"] if not a["checkpoint_bytes"]} == {"pairs"}

    dry = run(cache_cfg(make_cfg, cache_dir, "cache.drop_checkpoints=true", "cache.dry_run=true"))
    assert {d["name"]: d["bytes"] for d in dry["would_drop_checkpoints"]} == {sft_dir.name: sizes[sft_dir.name],
                                                                              rm_dir.name: sizes[rm_dir.name]}
    assert all((p / "checkpoints").is_dir() for p in (sft_dir, rm_dir, partial))

    done = run(cache_cfg(make_cfg, cache_dir, "cache.drop_checkpoints=true"))
    assert [d["name"] for d in done["dropped_checkpoints"]] == sorted([sft_dir.name, rm_dir.name])
    assert done["kept_checkpoints"] == [{"name": partial.name, "bytes": 0,
                                         "why": "partial: its build resumes from them"}]
    assert not (sft_dir / "checkpoints").exists() and not (rm_dir / "checkpoints").exists()
    assert (partial / "checkpoints").is_dir()
    assert "dropped the checkpoints of 2 complete artifacts" in caplog.text

    caplog.clear()
    assert run(make_cfg("debug=fast", "stage=rm")) == rm_dir  # both still served: nothing a reader uses went
    assert "[sft] cached" in caplog.text and "[rm] cached" in caplog.text and "building" not in caplog.text
