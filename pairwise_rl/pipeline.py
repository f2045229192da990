"""The stage graph and its artifact cache.

Each artifact stage (sft, rm, ppo) writes into `<paths.cache_dir>/<stage>-<key>/`, where `key` hashes only the
config sections that determine that artifact plus the keys of the stages it needs. So a sweep over PPO settings
reuses one SFT policy and one RM per RM mode, and rerunning a finished command skips straight to the result.

An artifact is served only once its COMPLETE marker exists (written atomically, last); a directory without it is
an interrupted run, which the stage resumes from its checkpoints. Once the marker is written the checkpoints have no
reader left (a complete artifact is served, never resumed) and go, unless `paths.keep_checkpoints`: on a pretrained
model they are two thirds of an artifact's bytes. A file lock keeps parallel sweep jobs from building the same
artifact twice.

An artifact has two keys. Its *config key* hashes what determines its numbers apart from the code: the config
sections of the stage, the numerics it computed in (the resolved `trainer.precision` and `trainer.packing`, for
stages that run a model) and the config keys of what it needs. Its directory key adds the code version (a hash of
the package source and pinned libraries, `pairwise_rl.provenance`) and the directories it was actually built
from. Every policy builds into the directory key and records the config key in COMPLETE.json, so `paths.cache_policy`
acts on the same artifacts whichever policy built them. When no artifact of this code exists: `code` builds a new
one; `config` serves one of the same config key built by other code, with a warning naming both versions;
`strict` refuses it (StaleArtifactError).

In a multi-process run (trainer=ddp | fsdp) every rank builds the artifact together: rank 0 takes the lock,
decides whether the artifact is cached and tells the others, and writes the marker once all ranks are done.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, Mapping, Optional, Tuple, TypeVar, Union

import torch
from lightning.fabric.utilities.seed import seed_everything
from omegaconf import DictConfig, OmegaConf

from pairwise_rl import distributed, hardware, provenance
from pairwise_rl.errors import UserError
from pairwise_rl.files import atomic_write_text, read_json, write_json
from pairwise_rl.registry import Registry

log = logging.getLogger(__name__)
T = TypeVar("T")

COMPLETE = "COMPLETE.json"
NEEDS = "needs.json"  # written when a build starts: what a partial artifact reads, so `stage=cache` spares it
LOCK = ".lock"
CHECKPOINT_DIR = "checkpoints"  # an artifact's resumable training checkpoints (training.PeriodicCheckpoint)
ARTIFACT_FORMAT = 6  # bump when a stage's output layout or semantics change, to invalidate old caches


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

    def kept(self, phase: str, compute: Callable[[], T]) -> T:
        """`compute()` once per build, timed as `phase`: its result is saved in the artifact's directory and read
        back when an interrupted build restarts, so a resumed stage does only the remaining work (a
        before-training evaluation: 11-16 s a restart). Only for work whose result does not depend on when it runs
        and that leaves no state behind (evaluations sample from a forked, seeded RNG). Saved as JSON without
        reordering keys: floats and key order come back exactly, tuples as lists."""
        path = self.dir / f"{phase.replace(' ', '_')}.json"
        if distributed.broadcast(path.is_file()):  # every rank takes the same branch (an evaluation may gather)
            log.info("[%s] %s: read from %s (saved by an interrupted attempt)", self.name, phase, path.name)
            return json.loads(path.read_text(encoding="utf-8"))["result"]
        with self.timed(phase):
            result = compute()
        atomic_write_text(path, json.dumps({"phase": phase, "result": result}, ensure_ascii=False) + "\n")
        return result


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
    # Whether the stage runs a model, so its numbers depend on the precision and packing (reading a dataset's
    # pairs does not): those settings join its key.
    numeric: Union[bool, Callable[[DictConfig], bool]] = True

    def needs_for(self, cfg: DictConfig) -> Tuple[str, ...]:
        return tuple(self.needs(cfg)) if callable(self.needs) else self.needs

    def keys_for(self, cfg: DictConfig) -> Tuple[str, ...]:
        return tuple(self.keys(cfg)) if callable(self.keys) else self.keys

    def numeric_for(self, cfg: DictConfig) -> bool:
        return bool(self.numeric(cfg)) if callable(self.numeric) else self.numeric

    def config(self, cfg: DictConfig) -> DictConfig:
        return self.prepare(cfg) if self.prepare is not None else cfg


ARTIFACT_STAGES: Registry[ArtifactStage] = Registry("artifact stage")


def artifact_stage(name: str, needs: Names, keys: Names,
                   prepare: Optional[Callable[[DictConfig], DictConfig]] = None,
                   numeric: Union[bool, Callable[[DictConfig], bool]] = True):
    def decorator(run: Callable[[DictConfig, StageContext], Dict[str, float]]):
        ARTIFACT_STAGES.register(name)(ArtifactStage(name, needs, keys, run, prepare, numeric))
        return run

    return decorator


class StaleArtifactError(UserError, RuntimeError):
    """paths.cache_policy=strict met an artifact built by other code."""

    fix = "rebuild it with paths.cache_policy=code, or serve it anyway with paths.cache_policy=config"


@dataclass(frozen=True)
class CachePolicy:
    serves_other_code: bool  # with no artifact of this code, one of the same config key built by other code is
    #                          served (with a warning) instead of building a new one
    refuse_other_code: bool  # ... or is an error (StaleArtifactError) rather than a reason to build


CACHE_POLICIES: Registry[CachePolicy] = Registry("cache policy")
CACHE_POLICIES.register("code")(CachePolicy(serves_other_code=False, refuse_other_code=False))
CACHE_POLICIES.register("config")(CachePolicy(serves_other_code=True, refuse_other_code=False))
CACHE_POLICIES.register("strict")(CachePolicy(serves_other_code=False, refuse_other_code=True))


def _spec(name: str) -> ArtifactStage:
    # The stage modules register themselves when `pairwise_rl.stages` is imported (the CLI does, and so does any
    # caller reaching this through a stage); this module never imports them, so there is no import circle.
    if not ARTIFACT_STAGES.names():
        raise LookupError(f"no artifact stage is registered (asked for {name!r}): import pairwise_rl.stages first")
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


def numerics(cfg: DictConfig) -> Dict[str, object]:
    """The settings that change a model's numbers without being part of any stage's config section."""
    from pairwise_rl import precision

    return {"precision": precision.resolve(cfg).name, "packing": bool(cfg.trainer.packing)}


def _hash(payload: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def config_key(cfg: DictConfig, name: str) -> str:
    """What determines the artifact's numbers apart from the code: the same for every code version."""
    spec = _spec(name)
    cfg = spec.config(cfg)
    payload = {
        "format": ARTIFACT_FORMAT,
        "stage": name,
        "config": {key: _section(cfg, key) for key in spec.keys_for(cfg)},
        "needs": {dep: config_key(cfg, dep) for dep in spec.needs_for(cfg)},
    }
    if spec.numeric_for(cfg):
        payload["numerics"] = numerics(cfg)
    return _hash(payload)


def stage_key(cfg: DictConfig, name: str, needs: Optional[Mapping[str, Path]] = None) -> str:
    """The directory key: the config key, this code's version and the directories of what it was built from
    (by default the ones this code would build). An artifact built from a dependency that paths.cache_policy=config
    served from other code therefore never takes the directory of one built from this code's own."""
    spec = _spec(name)
    cfg = spec.config(cfg)
    if needs is None:
        needs = {dep: artifact_dir(cfg, dep) for dep in spec.needs_for(cfg)}
    return _hash({"config_key": config_key(cfg, name), "code": provenance.current()["code_version"],
                  "needs": {dep: Path(path).name for dep, path in needs.items()}})


def artifact_dir(cfg: DictConfig, name: str, needs: Optional[Mapping[str, Path]] = None) -> Path:
    return Path(cfg.paths.cache_dir) / f"{name}-{stage_key(cfg, name, needs)}"


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
        raise StaleArtifactError(f"paths.cache_policy={policy}: {message}")
    if str(path) not in _WARNED:  # a stage's needs are ensured again by every stage after it: say it once
        _WARNED.add(str(path))
        log.warning("%s. Serving it (paths.cache_policy=%s); paths.cache_policy=code would rebuild it", message, policy)


def same_config(cfg: DictConfig, name: str, key: str, needs: Mapping[str, Path]) -> Optional[Path]:
    """A complete `name` artifact of config key `key` built by any code: one built from these very inputs first,
    then the newest. What paths.cache_policy=config serves and strict refuses when this code has none."""
    inputs = {dep: str(path) for dep, path in needs.items()}
    found = []
    for marker in Path(cfg.paths.cache_dir).glob(f"{name}-*/{COMPLETE}"):
        record = read_json(marker)
        if record.get("config_key") == key:
            found.append((record.get("needs") == inputs, record.get("finished_at", 0.0), marker.parent))
    return max(found)[2] if found else None


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


def _other_code(cfg: DictConfig, name: str, key: str, needs: Mapping[str, Path]) -> Optional[Path]:
    """Rank 0's answer, for every rank: an artifact of this config by other code that the policy acts on."""
    policy = CACHE_POLICIES.get(cfg.paths.cache_policy)
    found = None
    if distributed.is_main() and (policy.serves_other_code or policy.refuse_other_code):
        found = same_config(cfg, name, key, needs)
    found = distributed.broadcast(None if found is None else str(found))
    return None if found is None else Path(found)


def ensure(cfg: DictConfig, name: str) -> Path:
    """Return the directory of a complete `name` artifact, building it (and what it needs) if not cached."""
    from pairwise_rl import precision

    spec = _spec(name)
    cfg = spec.config(cfg)
    needs = {dep: ensure(cfg, dep) for dep in spec.needs_for(cfg)}
    out = artifact_dir(cfg, name, needs)
    if distributed.broadcast(is_complete(out)):
        log.info("[%s] cached: %s", name, out)
        return _serve(cfg, name, out)
    key = config_key(cfg, name)
    other = _other_code(cfg, name, key, needs)
    if other is not None:  # config: served with a warning; strict: StaleArtifactError
        return _serve(cfg, name, other)
    with _locked(out) if distributed.is_main() else nullcontext():
        # Only rank 0 holds the lock; its answer (after waiting for another job) is everyone's answer.
        if distributed.broadcast(is_complete(out)):
            return _serve(cfg, name, out)
        log.info("[%s] building %s", name, out)
        record = provenance.current()
        if distributed.is_main():
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / NEEDS, {k: str(v) for k, v in needs.items()})
            saved = OmegaConf.to_container(cfg, resolve=True)
            saved["built_by"] = record  # beside the config, so the file alone says what produced the artifact
            if spec.numeric_for(cfg):
                saved["numerics"] = numerics(cfg)  # what trainer.precision=auto resolved to on this machine
            OmegaConf.save(OmegaConf.create(saved), out / "config.yaml")
        started = time.time()
        # Fresh heads (a BT RM's score layer) draw from the global RNGs: seed them so a stage is a function of
        # its config, which exact resume and cross-run determinism both rely on.
        seed_everything(cfg.seed, verbose=False)
        ctx = StageContext(name, out.name.split("-", 1)[1], out, needs)
        with precision.autocast(cfg):  # every forward of the stage, not only Lightning's training step
            metrics = spec.run(cfg, ctx)
        distributed.barrier()  # every rank's share of the stage is done before it is marked complete
        if distributed.is_main():
            write_json(out / COMPLETE, {"stage": name, "seconds": round(time.time() - started, 1),
                                        "finished_at": time.time(), "built_by": record,
                                        "config_key": key,
                                        **({"numerics": numerics(cfg)} if spec.numeric_for(cfg) else {}),
                                        "phases": ctx.phases, "world_size": distributed.world_size(),
                                        # what it computed on: float rounding differs between CPU types and
                                        # thread counts (neither is part of the key: a cache serves it as built)
                                        "machine": hardware.machine(), "torch_threads": torch.get_num_threads(),
                                        "needs": {k: str(v) for k, v in needs.items()}, "metrics": metrics})
            if not cfg.paths.keep_checkpoints:  # after the marker: a kill in between leaves them, never a partial
                freed = drop_checkpoints(out)
                if freed:
                    log.info("[%s] dropped its checkpoints (%.2f GB; paths.keep_checkpoints=true keeps them)",
                             name, freed / 1e9)
    distributed.barrier()  # the others read the artifact only once the marker is there
    return out


def tree_bytes(path: Path) -> int:
    """Bytes of the files under a directory (links not followed); 0 when it does not exist."""
    path = Path(path)
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def drop_checkpoints(path: Path) -> int:
    """Remove an artifact's resumable checkpoints; returns the bytes freed. Only for a complete artifact (the caller
    checks): a partial one resumes from them."""
    folder = Path(path) / CHECKPOINT_DIR
    if not folder.is_dir():
        return 0
    freed = tree_bytes(folder)
    shutil.rmtree(folder)
    return freed


def stage_metrics(path: Path) -> Dict[str, float]:
    return read_json(Path(path) / COMPLETE)["metrics"]
