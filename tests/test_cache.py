"""The cache index on real (debug-size) artifacts: what needs what; clean never removes a needed or locked one."""

import fcntl
import json
import os
import shutil
from pathlib import Path

from pairwise_rl import cache
from pairwise_rl.files import read_json
from pairwise_rl.pipeline import COMPLETE, LOCK, NEEDS


def _by_name(entries):
    return {e.name: e for e in entries}


def test_scan_lists_every_artifact_with_what_it_needs_and_who_needs_it(real_cache):
    cache_dir, artifacts = real_cache
    (cache_dir / "models").mkdir()  # converted models live beside artifacts and are not listed
    entries = _by_name(cache.scan(cache_dir))
    trad, pair = artifacts["traditional"], artifacts["pairwise_rl"]
    assert trad["sft"] == pair["sft"]
    sft = entries[trad["sft"]]
    assert sft.stage == "sft" and sft.status == "complete" and sft.needs == [] and sft.size_bytes > 100_000
    assert {trad["rm"], trad["ppo"], pair["ppo"]} <= set(sft.needed_by)
    assert entries[trad["ppo"]].needs == sorted([trad["sft"], trad["rm"]])
    assert trad["ppo"] in entries[trad["evaluate"]].needs
    assert all(e.built_by is not None and len(e.built_by["code_version"]) == 12 for e in entries.values())
    assert "models" not in entries


def test_clean_spares_whatever_a_kept_artifact_needs(real_cache):
    cache_dir, artifacts = real_cache
    entries = cache.scan(cache_dir)
    sft = artifacts["traditional"]["sft"]
    marker = read_json(cache_dir / sft / COMPLETE)
    marker["built_by"]["code_version"] = "0" * 12  # the SFT policy alone came from other code
    (cache_dir / sft / COMPLETE).write_text(json.dumps(marker))
    entries = cache.scan(cache_dir)
    ctx = cache.context(entries, max_age_days=30)
    chosen, spared = cache.select(entries, ["stale"], ctx)
    assert chosen == [] and spared[sft].startswith("needed by ")

    # Every artifact stale: all can go, readers first.
    for entry in entries:
        marker = read_json(entry.path / COMPLETE)
        marker["built_by"]["code_version"] = "0" * 12
        (entry.path / COMPLETE).write_text(json.dumps(marker))
    entries = cache.scan(cache_dir)
    chosen, spared = cache.select(entries, ["stale"], ctx)
    assert {e.name for e in chosen} == {e.name for e in entries} and spared == {}
    order = [e.name for e in cache.removal_order(chosen)]
    assert order.index(artifacts["traditional"]["ppo"]) < order.index(sft)
    assert order.index(artifacts["traditional"]["evaluate"]) < order.index(artifacts["traditional"]["ppo"])
    scanned = [e.name for e in entries]
    assert all(cache.remove(e, scanned) is None for e in cache.removal_order(chosen))
    assert cache.scan(cache_dir) == []


def test_a_build_in_progress_keeps_its_lock_and_its_inputs(real_cache):
    cache_dir, artifacts = real_cache
    sft = artifacts["traditional"]["sft"]
    building = cache_dir / "ppo-aaaaaaaaaaaa"  # a PPO run that is building right now on that SFT policy
    building.mkdir()
    (building / NEEDS).write_text(json.dumps({"sft": str(cache_dir / sft)}))
    with open(building / LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = cache.scan(cache_dir)
        assert _by_name(entries)[building.name].status == "building"
        future = cache.context(entries, max_age_days=1, now=entries[0].last_used + 10 * cache.DAY)
        chosen, spared = cache.select(entries, ["partial", "old", "stale"], future)  # everything but the build is old
        names = {e.name for e in chosen}
        assert building.name not in names and spared[building.name] == "being built (lock held)"
        assert sft not in names and spared[sft] == f"needed by {building.name}"
        assert artifacts["traditional"]["ppo"] in names  # old and needed by nothing kept
        assert cache.remove(_by_name(entries)[building.name], [e.name for e in entries]) is not None
    # The lock is released (the builder died): the same directory is now an interrupted build.
    entries = cache.scan(cache_dir)
    assert _by_name(entries)[building.name].status == "partial"
    chosen, _ = cache.select(entries, ["partial"], cache.context(entries, 30))
    assert [e.name for e in chosen] == [building.name]


def test_removal_rechecks_under_the_lock(real_cache):
    cache_dir, artifacts = real_cache
    entries = _by_name(cache.scan(cache_dir))
    scanned = list(entries)
    ppo = entries[artifacts["pairwise_rl"]["ppo"]]
    os.utime(ppo.path / COMPLETE)  # served (by a job starting now) after the scan
    assert cache.remove(ppo, scanned) == "served after the scan" and ppo.path.exists()

    rm = entries[artifacts["pairwise_rl"]["rm"]]
    newcomer = cache_dir / "ppo-bbbbbbbbbbbb"  # a build that started after the scan reads that RM
    newcomer.mkdir()
    (newcomer / NEEDS).write_text(json.dumps({"rm": str(rm.path)}))
    assert cache.remove(rm, scanned) == "needed by ppo-bbbbbbbbbbbb, started after the scan" and rm.path.exists()


def test_orphaned_means_an_input_is_gone(real_cache):
    cache_dir, artifacts = real_cache
    shutil.rmtree(cache_dir / artifacts["pairwise_rl"]["rm"])
    entries = cache.scan(cache_dir)
    chosen, spared = cache.select(entries, ["orphaned"], cache.context(entries, 30))
    ppo, evaluate = artifacts["pairwise_rl"]["ppo"], artifacts["pairwise_rl"]["evaluate"]
    assert chosen == [] and spared == {ppo: f"needed by {evaluate}"}  # the PPO read that RM; its evaluation stays
    shutil.rmtree(cache_dir / evaluate)
    entries = cache.scan(cache_dir)
    chosen, spared = cache.select(entries, ["orphaned"], cache.context(entries, 30))
    assert [e.name for e in chosen] == [ppo] and spared == {}
