"""stage=cache: list the artifact cache and, with cache.clean=[rules], remove what no kept artifact needs.

    pairwise-rl stage=cache                                  # the listing (and cache.json in the run directory)
    pairwise-rl stage=cache 'cache.clean=[partial,stale]' cache.dry_run=true   # what would go, and what stays why
    pairwise-rl stage=cache 'cache.clean=[old]' cache.max_age_days=14
    pairwise-rl stage=cache cache.drop_checkpoints=true      # complete artifacts lose their resumable checkpoints
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict, List

from omegaconf import DictConfig

from pairwise_rl import cache, provenance
from pairwise_rl.files import write_json
from pairwise_rl.stages.registry import STAGES

log = logging.getLogger(__name__)


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def human_age(seconds: float) -> str:
    for unit, span in (("d", cache.DAY), ("h", 3600.0), ("min", 60.0)):
        if seconds >= span:
            return f"{seconds / span:.1f} {unit}"
    return f"{seconds:.0f} s"


def row(entry: cache.Entry, now: float, current_version: str) -> Dict[str, object]:
    """One line per artifact, narrow enough for a terminal; cache.json has the full records."""
    version = provenance.code_version(entry.built_by)
    git = (entry.built_by or {}).get("git")
    commit = f" @{git['commit'][:7]}{'+' if git['dirty'] else ''}" if git else ""
    return {"status": entry.status, "size": human_size(entry.size_bytes), "age": human_age(now - entry.started_at),
            "used": human_age(now - entry.last_used),
            "checkpoints": human_size(entry.checkpoint_bytes) if entry.checkpoint_bytes else "-",
            "built by": f"{version}{commit} {'(this)' if version == current_version else 'OTHER'}",
            "needed by": len(entry.needed_by)}


def listing(entries: List[cache.Entry], now: float, current_version: str, title: str) -> str:
    """Aligned plain text, one line per artifact (never wrapped by the terminal's width, easy to grep)."""
    rows = [{"name": e.name, **row(e, now, current_version)} for e in entries]
    columns = ["name", "status", "size", "checkpoints", "age", "used", "built by", "needed by"]
    widths = {c: max([len(c)] + [len(str(r[c])) for r in rows]) for c in columns}
    lines = [title, "  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join(lines)


def record(entry: cache.Entry) -> Dict[str, object]:
    return {"name": entry.name, "stage": entry.stage, "key": entry.key, "status": entry.status,
            "size_bytes": entry.size_bytes, "checkpoint_bytes": entry.checkpoint_bytes, "started_at": entry.started_at,
            "last_used": entry.last_used,
            "built_by": entry.built_by, "needs": entry.needs, "needed_by": sorted(entry.needed_by)}


def trim(entries: List[cache.Entry], removed: set, dry_run: bool) -> Dict[str, List[dict]]:
    """cache.drop_checkpoints: every complete artifact that stays loses its checkpoints (partial ones resume from
    theirs and keep them)."""
    chosen = [e for e in entries if e.status == "complete" and e.checkpoint_bytes and e.name not in removed]
    dropped, kept = [], []
    for entry in chosen:
        freed, why = (entry.checkpoint_bytes, None) if dry_run else cache.trim_checkpoints(entry)
        (dropped if why is None else kept).append({"name": entry.name, "bytes": freed, **({"why": why} if why else {})})
    kept += [{"name": e.name, "bytes": 0, "why": f"{e.status}: its build resumes from them"}
             for e in entries if e.status != "complete" and e.checkpoint_bytes]
    log.info("cache.drop_checkpoints: %s the checkpoints of %d complete artifacts, %s%s",
             "would drop" if dry_run else "dropped", len(dropped), human_size(sum(d["bytes"] for d in dropped)),
             "".join(f"\n  kept {k['name']}'s: {k['why']}" for k in kept))
    return {"would_drop_checkpoints" if dry_run else "dropped_checkpoints": dropped, "kept_checkpoints": kept}


@STAGES.register("cache")
def cache_command(cfg: DictConfig) -> Dict[str, List[dict]]:
    """List the artifact cache (size, age, code version, what needs what); cache.clean=[...] removes by rule."""
    cache_dir = Path(cfg.paths.cache_dir)
    entries = cache.scan(cache_dir)
    now = time.time()
    current = str(provenance.current()["code_version"])
    total = human_size(sum(e.size_bytes for e in entries))
    print(listing(entries, now, current, f"{cache_dir}: {len(entries)} artifacts, {total}; this code is "
                  f"{provenance.label(provenance.current())}"))
    result: Dict[str, List[dict]] = {"artifacts": [record(e) for e in entries], "removed": [], "kept": []}
    if cfg.cache.clean:
        rules = list(cfg.cache.clean)
        chosen, spared = cache.select(entries, rules, cache.context(entries, cfg.cache.max_age_days, now))
        if cfg.cache.dry_run:
            result["would_remove"] = [record(e) for e in chosen]
        else:
            scanned = [e.name for e in entries]
            for entry in cache.removal_order(chosen):
                why = cache.remove(entry, scanned)
                if why is None:
                    result["removed"].append(record(entry))
                else:
                    spared[entry.name] = why
        result["kept"] = [{"name": name, "why": why} for name, why in sorted(spared.items())]
        gone = result.get("would_remove", result["removed"])
        log.info("cache.clean=%s: %s %d artifacts, %s%s", rules, "would remove" if cfg.cache.dry_run else "removed",
                 len(gone), human_size(sum(r["size_bytes"] for r in gone)),
                 "".join(f"\n  {r['name']}" for r in gone))
        for item in result["kept"]:
            log.info("kept %s: %s", item["name"], item["why"])
    if cfg.cache.drop_checkpoints:
        result.update(trim(entries, {r["name"] for r in result["removed"]}, cfg.cache.dry_run))
    write_json(Path(cfg.paths.output_dir) / "cache.json", result)
    return result
