"""The artifact cache as a whole: what is in it, what needs what, and which artifacts can go.

An artifact directory is `<stage>-<key>` under `paths.cache_dir`. It is complete (COMPLETE.json exists), being built
(its lock is held by a live process) or partial (neither: an interrupted build, resumable). Every build records the
artifacts it reads (needs.json at the start, COMPLETE.json at the end), so the cache knows which artifacts others
need even while they are half built.

Cleaning picks candidates by rule (`cache.clean`), then gives back every candidate that something kept still needs,
directly or through another kept artifact, and every artifact whose lock is held. Removal happens under the
artifact's own lock, so a job that starts building it meanwhile waits and then rebuilds it from scratch.

Dropping checkpoints (`cache.drop_checkpoints`) trims instead of removing: a complete artifact keeps everything a
reader uses and loses only the resumable checkpoints nothing reads (what `paths.keep_checkpoints=false`, the
default, does when an artifact completes; caches built with true, or by code before that key, still hold them).
"""

from __future__ import annotations

import errno
import fcntl
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from omegaconf import DictConfig, OmegaConf

from pairwise_rl import provenance
from pairwise_rl.files import read_json
from pairwise_rl.checks import check, one_of, positive
from pairwise_rl.pipeline import CACHE_POLICIES, CHECKPOINT_DIR, COMPLETE, LOCK, NEEDS, drop_checkpoints, tree_bytes
from pairwise_rl.registry import Registry

ARTIFACT_NAME = re.compile(r"^(?P<stage>[a-z_]+)-(?P<key>[0-9a-f]{12})$")
DAY = 86400.0


@dataclass
class Entry:
    path: Path
    stage: str
    key: str
    status: str                    # complete | building | partial
    size_bytes: int
    started_at: float              # when the build began (config.yaml's mtime)
    last_used: float               # complete: the marker's mtime, touched whenever the cache serves it
    built_by: Optional[dict]       # complete: COMPLETE.json's record; otherwise the starting code's (config.yaml)
    needs: List[str]               # names of the artifacts it reads
    checkpoint_bytes: int          # of size_bytes, its resumable checkpoints
    needed_by: List[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


def _lock_held(path: Path) -> bool:
    lock = path / LOCK
    if not lock.exists():
        return False
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES):
                return True
            raise
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _recorded_code(path: Path, complete: bool) -> Optional[dict]:
    if complete:
        return read_json(path / COMPLETE).get("built_by")
    saved = path / "config.yaml"
    if not saved.exists():
        return None
    record = OmegaConf.load(saved).get("built_by")
    return OmegaConf.to_container(record) if record is not None else None


def _needs(path: Path, complete: bool) -> List[str]:
    source = path / COMPLETE if complete else path / NEEDS
    if not source.exists():
        return []
    needs = read_json(source)
    needs = needs.get("needs", {}) if complete else needs
    return sorted(Path(p).name for p in needs.values())


def scan(cache_dir: Path) -> List[Entry]:
    """Every artifact directory under cache_dir (other directories, like converted models/, are not artifacts)."""
    entries: Dict[str, Entry] = {}
    for path in sorted(Path(cache_dir).iterdir()) if Path(cache_dir).is_dir() else []:
        match = ARTIFACT_NAME.match(path.name)
        if not path.is_dir() or match is None:
            continue
        complete = (path / COMPLETE).exists()
        status = "complete" if complete else ("building" if _lock_held(path) else "partial")
        started = (path / "config.yaml").stat().st_mtime if (path / "config.yaml").exists() else path.stat().st_mtime
        entries[path.name] = Entry(path=path, stage=match["stage"], key=match["key"], status=status,
                                   size_bytes=tree_bytes(path), checkpoint_bytes=tree_bytes(path / CHECKPOINT_DIR),
                                   started_at=started,
                                   last_used=(path / COMPLETE).stat().st_mtime if complete else path.stat().st_mtime,
                                   built_by=_recorded_code(path, complete), needs=_needs(path, complete))
    for entry in entries.values():
        for need in entry.needs:
            if need in entries:
                entries[need].needed_by.append(entry.name)
    return list(entries.values())


def check_config(cfg: DictConfig) -> None:
    """The cache keys: the policy that decides what is served (pipeline.CACHE_POLICIES) and the clean rules."""
    one_of(cfg, "paths.cache_policy", CACHE_POLICIES.names())
    for rule in cfg.cache.clean:
        check(rule in CLEAN_RULES, "cache.clean", f"unknown rule {rule!r}; choose from {CLEAN_RULES.names()}")
    positive(cfg, "cache.max_age_days")


# ---------------------------------------------------------------------------------------------- clean rules
@dataclass(frozen=True)
class CleanContext:
    now: float
    max_age_days: float
    code_version: str
    present: frozenset  # names of the artifacts in the cache


CLEAN_RULES: Registry[Callable[[Entry, CleanContext], bool]] = Registry("cache.clean rule")


@CLEAN_RULES.register("partial")
def _partial(entry: Entry, ctx: CleanContext) -> bool:
    """An interrupted build nobody is running (its checkpoints go with it)."""
    return entry.status == "partial"


@CLEAN_RULES.register("stale")
def _stale(entry: Entry, ctx: CleanContext) -> bool:
    """Built (or started) by code other than this process's: paths.cache_policy=code never serves it again."""
    return provenance.code_version(entry.built_by) != ctx.code_version


@CLEAN_RULES.register("orphaned")
def _orphaned(entry: Entry, ctx: CleanContext) -> bool:
    """An artifact read from one that is no longer in the cache: what it was built from can't be inspected."""
    return any(need not in ctx.present for need in entry.needs)


@CLEAN_RULES.register("old")
def _old(entry: Entry, ctx: CleanContext) -> bool:
    """Not served or built for cache.max_age_days."""
    return ctx.now - entry.last_used > ctx.max_age_days * DAY


def select(entries: Sequence[Entry], rules: Sequence[str], ctx: CleanContext) -> Tuple[List[Entry], Dict[str, str]]:
    """(artifacts to remove, {artifact a rule matched but that stays: why})."""
    by_name = {e.name: e for e in entries}
    matched = {e.name for e in entries if any(CLEAN_RULES.get(rule)(e, ctx) for rule in rules)}
    spared = {name: "being built (lock held)" for name in matched if by_name[name].status == "building"}
    remove = matched - set(spared)
    changed = True
    while changed:  # whatever stays keeps everything it reads, directly or through another artifact that stays
        changed = False
        for entry in entries:
            if entry.name in remove:
                continue
            for need in entry.needs:
                if need in remove:
                    remove.discard(need)
                    spared[need] = f"needed by {entry.name}"
                    changed = True
    return [by_name[name] for name in sorted(remove)], spared


@contextmanager
def _holding_lock(path: Path) -> Iterator[bool]:
    """Take the artifact's lock without waiting; yields False when a builder holds it."""
    (path / LOCK).touch()
    with open(path / LOCK) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _readers(cache_dir: Path, name: str) -> List[str]:
    """Artifacts now in the cache (complete or not) that read `name`."""
    return [other.name for other in Path(cache_dir).iterdir()
            if ARTIFACT_NAME.match(other.name) and other.is_dir()
            and name in _needs(other, (other / COMPLETE).exists()) + _needs(other, False)]


def remove(entry: Entry, scanned: Sequence[str]) -> Optional[str]:
    """Delete one artifact under its lock. Returns None once it is gone, else why it stays.

    Re-checked under the lock, because jobs may have started since the scan: a build holding the lock, a cache hit
    since (the marker's mtime moved), or a new artifact (not among `scanned`) that reads it all keep it.
    """
    with _holding_lock(entry.path) as ours:
        if not ours:
            return "a build took its lock after the scan"
        if entry.status == "complete" and (entry.path / COMPLETE).stat().st_mtime != entry.last_used:
            return "served after the scan"
        newcomers = [r for r in _readers(entry.path.parent, entry.name) if r not in scanned]
        if newcomers:
            return f"needed by {newcomers[0]}, started after the scan"
        shutil.rmtree(entry.path)
    return None


def trim_checkpoints(entry: Entry) -> Tuple[int, Optional[str]]:
    """Drop a complete artifact's checkpoints under its lock: (bytes freed, None) or (0, why they stay)."""
    with _holding_lock(entry.path) as ours:
        if not ours:
            return 0, "a build took its lock after the scan"
        if not (entry.path / COMPLETE).exists():
            return 0, "not complete: its build resumes from them"
        return drop_checkpoints(entry.path), None


def removal_order(entries: Sequence[Entry]) -> List[Entry]:
    """Readers before what they read, so an interrupted clean never leaves an artifact without its inputs."""
    left = {e.name: e for e in entries}
    ordered: List[Entry] = []
    while left:
        ready = [e for e in left.values() if not any(r in left for r in e.needed_by)] or list(left.values())
        for entry in sorted(ready, key=lambda e: e.name):
            ordered.append(left.pop(entry.name))
    return ordered


def context(entries: Sequence[Entry], max_age_days: float, now: Optional[float] = None) -> CleanContext:
    return CleanContext(now=time.time() if now is None else now, max_age_days=max_age_days,
                        code_version=str(provenance.current()["code_version"]),
                        present=frozenset(e.name for e in entries))
