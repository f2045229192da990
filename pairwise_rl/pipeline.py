"""The stage graph and its artifact cache.

Each artifact stage (sft, rm, ppo) writes into `<paths.cache_dir>/<stage>-<key>/`, where `key` hashes only the
config sections that determine that artifact plus the keys of the stages it needs. So a sweep over PPO settings
reuses one SFT policy and one RM per RM mode, and rerunning a finished command skips straight to the result.

An artifact is served only once its COMPLETE marker exists (written atomically, last); a directory without it is
an interrupted run, which the stage resumes from its checkpoints. A file lock keeps parallel sweep jobs from
building the same artifact twice.

Every artifact records the code that built it (`pairwise_rl.provenance`: source hash, package version, git commit,
pinned library versions) in COMPLETE.json and config.yaml. `paths.cache_policy` says what happens when the code has
changed since: `code` puts the code version into every key, so changed code rebuilds; `config` serves the old
artifact with a warning naming both versions; `strict` refuses it.

In a multi-process run (trainer=ddp | fsdp) every rank builds the artifact together: rank 0 takes the lock,
decides whether the artifact is cached and tells the others, and writes the marker once all ranks are done.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, Mapping, Optional, Tuple, Union

from lightning.fabric.utilities.seed import seed_everything
from omegaconf import DictConfig, OmegaConf

from pairwise_rl import distributed, provenance
from pairwise_rl.eval.io import read_json, write_json
from pairwise_rl.registry import Registry

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE.json"
NEEDS = "needs.json"  # written when a build starts: what a partial artifact reads, so `stage=cache` spares it
LOCK = ".lock"
ARTIFACT_FORMAT = 5  # bump when a stage's output layout or semantics change, to invalidate old caches


@dataclass(frozen=True)
class StageContext:
    name: str
    key: str
    dir: Path
    needs: Mapping[str, Path]
    phases: Dict[str, float] = field(default_factory=dict)  # seconds per named phase, recorded in COMPLETE.json

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Time a phase of the stage (data collection, training, evaluation): where a stage's minutes go."""
        started = time.time()
        try:
            yield
        finally:
            self.phases[phase] = round(self.phases.get(phase, 0.0) + time.time() - started, 1)
            log.info("[%s] %s: %.1f s", self.name, phase, time.time() - started)


Names = Union[Tuple[str, ...], Callable[[DictConfig], Tuple[str, ...]]]


@dataclass(frozen=True)
class ArtifactStage:
    name: str
    needs: Names  # stages whose artifacts this one reads (a function of cfg when the data decides)
    keys: Names   # config sections that determine the artifact (likewise)
    run: Callable[[DictConfig, StageContext], Dict[str, float]]
    # The config this stage is built from, given any setup's config: a stage shared by setups that differ in a
    # section it reads (the evaluation judge is one RM whatever each setup's rm.mode) rewrites that section here.
    prepare: Optional[Callable[[DictConfig], DictConfig]] = None

    def needs_for(self, cfg: DictConfig) -> Tuple[str, ...]:
        return tuple(self.needs(cfg)) if callable(self.needs) else self.needs

    def keys_for(self, cfg: DictConfig) -> Tuple[str, ...]:
        return tuple(self.keys(cfg)) if callable(self.keys) else self.keys

    def config(self, cfg: DictConfig) -> DictConfig:
        return self.prepare(cfg) if self.prepare is not None else cfg


ARTIFACT_STAGES: Registry[ArtifactStage] = Registry("artifact stage")


def artifact_stage(name: str, needs: Names, keys: Names,
                   prepare: Optional[Callable[[DictConfig], DictConfig]] = None):
    def decorator(run: Callable[[DictConfig, StageContext], Dict[str, float]]):
        ARTIFACT_STAGES.register(name)(ArtifactStage(name, needs, keys, run, prepare))
        return run

    return decorator


class StaleArtifactError(RuntimeError):
    """paths.cache_policy=strict met an artifact built by other code."""


@dataclass(frozen=True)
class CachePolicy:
    keyed_by_code: bool      # the code version is part of every artifact key: changed code builds new artifacts
    refuse_other_code: bool  # an artifact built by other code is an error rather than a warning


CACHE_POLICIES: Registry[CachePolicy] = Registry("cache policy")
CACHE_POLICIES.register("code")(CachePolicy(keyed_by_code=True, refuse_other_code=False))
CACHE_POLICIES.register("config")(CachePolicy(keyed_by_code=False, refuse_other_code=False))
CACHE_POLICIES.register("strict")(CachePolicy(keyed_by_code=False, refuse_other_code=True))


def _spec(name: str) -> ArtifactStage:
    import pairwise_rl.stages  # noqa: F401 -- importing the stage modules registers them (lazy: they import us)

    return ARTIFACT_STAGES.get(name)


def _section(cfg: DictConfig, key: str):
    value = OmegaConf.select(cfg, key, throw_on_missing=True)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def keys_except(cfg: DictConfig, section: str, excluded: str) -> Tuple[str, ...]:
    """Dotted keys that together cover `section` except the one key `excluded` below it, e.g. ("data",
    "data.digits.tau") -> data.name, data.task, ..., data.digits.kinds, ... (everything but the taus)."""
    keys, prefix = [], section
    for part in excluded[len(section) + 1:].split("."):
        node = OmegaConf.select(cfg, prefix)
        keys.extend(f"{prefix}.{key}" for key in node if key != part)
        prefix = f"{prefix}.{part}"
    return tuple(keys)


def stage_key(cfg: DictConfig, name: str) -> str:
    spec = _spec(name)
    cfg = spec.config(cfg)
    payload = {
        "format": ARTIFACT_FORMAT,
        "stage": name,
        "config": {key: _section(cfg, key) for key in spec.keys_for(cfg)},
        "needs": {dep: stage_key(cfg, dep) for dep in spec.needs_for(cfg)},
    }
    if CACHE_POLICIES.get(cfg.paths.cache_policy).keyed_by_code:
        payload["code"] = provenance.current()["code_version"]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def artifact_dir(cfg: DictConfig, name: str) -> Path:
    return Path(cfg.paths.cache_dir) / f"{name}-{stage_key(cfg, name)}"


def is_complete(path: Path) -> bool:
    return (Path(path) / COMPLETE).exists()


def built_by(path: Path) -> Optional[dict]:
    """The provenance record of a complete artifact (None: built before provenance was recorded)."""
    return read_json(Path(path) / COMPLETE).get("built_by")


_WARNED: set = set()  # artifacts of other code this process has already warned about


def check_code(cfg: DictConfig, name: str, path: Path) -> None:
    """Apply paths.cache_policy to a complete artifact about to be served."""
    recorded, now = built_by(path), provenance.current()
    if provenance.code_version(recorded) == now["code_version"]:
        return
    policy = cfg.paths.cache_policy
    message = (f"[{name}] {path} was built by code {provenance.label(recorded)}, this is code "
               f"{provenance.label(now)}; changed: {', '.join(provenance.differences(recorded, now))}")
    if CACHE_POLICIES.get(policy).refuse_other_code:
        raise StaleArtifactError(f"paths.cache_policy={policy}: {message}. Rebuild it with paths.cache_policy=code, "
                                 "or serve it anyway with paths.cache_policy=config")
    if str(path) not in _WARNED:  # a stage's needs are ensured again by every stage after it: say it once
        _WARNED.add(str(path))
        log.warning("%s. Serving it (paths.cache_policy=%s); paths.cache_policy=code would rebuild it", message, policy)


def _started_by(path: Path) -> Optional[dict]:
    """The record of the code that started an interrupted build of `path` (its config.yaml), if there was one."""
    saved = Path(path) / "config.yaml"
    if not saved.exists():
        return None
    record = OmegaConf.load(saved).get("built_by")
    return OmegaConf.to_container(record) if record is not None else {}


def _serve(cfg: DictConfig, name: str, path: Path) -> Path:
    check_code(cfg, name, path)
    if distributed.is_main():
        try:  # the marker's mtime is the artifact's last use: what `stage=cache` ages by
            os.utime(path / COMPLETE)
        except OSError:  # a read-only shared cache is still servable
            pass
    return path


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure(cfg: DictConfig, name: str) -> Path:
    """Return the directory of a complete `name` artifact, building it (and what it needs) if not cached."""
    spec = _spec(name)
    cfg = spec.config(cfg)
    needs = {dep: ensure(cfg, dep) for dep in spec.needs_for(cfg)}
    out = artifact_dir(cfg, name)
    if distributed.broadcast(is_complete(out)):
        log.info("[%s] cached: %s", name, out)
        return _serve(cfg, name, out)
    with _locked(out) if distributed.is_main() else nullcontext():
        # Only rank 0 holds the lock; its answer (after waiting for another job) is everyone's answer.
        if distributed.broadcast(is_complete(out)):
            return _serve(cfg, name, out)
        log.info("[%s] building %s", name, out)
        record = provenance.current()
        started_by = _started_by(out)
        if started_by is not None and provenance.code_version(started_by) != record["code_version"]:
            log.warning("[%s] resuming %s, which code %s started; this is code %s", name, out,
                        provenance.label(started_by), provenance.label(record))
        if distributed.is_main():
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / NEEDS, {k: str(v) for k, v in needs.items()})
            saved = OmegaConf.to_container(cfg, resolve=True)
            saved["built_by"] = record  # beside the config, so the file alone says what produced the artifact
            OmegaConf.save(OmegaConf.create(saved), out / "config.yaml")
        started = time.time()
        # Fresh heads (a BT RM's score layer) draw from the global RNGs: seed them so a stage is a function of
        # its config, which exact resume and cross-run determinism both rely on.
        seed_everything(cfg.seed, verbose=False)
        ctx = StageContext(name, out.name.split("-", 1)[1], out, needs)
        metrics = spec.run(cfg, ctx)
        distributed.barrier()  # every rank's share of the stage is done before it is marked complete
        if distributed.is_main():
            write_json(out / COMPLETE, {"stage": name, "seconds": round(time.time() - started, 1),
                                        "finished_at": time.time(), "built_by": record,
                                        "started_by": started_by or record,  # differs after a resume across code
                                        "phases": ctx.phases, "world_size": distributed.world_size(),
                                        "needs": {k: str(v) for k, v in needs.items()}, "metrics": metrics})
    distributed.barrier()  # the others read the artifact only once the marker is there
    return out


def stage_metrics(path: Path) -> Dict[str, float]:
    return read_json(Path(path) / COMPLETE)["metrics"]
