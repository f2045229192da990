"""Building a pipeline's setups at once, each in its own process with its share of the cores.

After the shared stages (the SFT policy, the preference pairs, the evaluation judge), a pipeline's setups are
independent: each builds its own RM, PPO run and evaluation. A tiny model's matmuls are too small to keep two
threads busy, so on a 2-core CPU two setups with one thread each finish sooner than the same setups one after
another with two threads. Each setup runs in a spawned worker process (torch's thread count is per process, and
a fork of a process that already started torch's thread pools is unsafe); the artifact cache's file locks make two
setups that need one RM wait for it rather than build it twice. Results do not depend on how setups are scheduled:
every stage seeds itself from its config (pipeline.ensure), so a setup's numbers are the same whether it ran alone
or beside another, at the same thread count (tests/stages/test_pipeline_concurrency.py).
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

AUTO = "auto"
MULTI_PROCESS = ("ddp", "fsdp")  # strategies that start ranks of their own: their setups run one after another


class Plan(NamedTuple):
    """How a pipeline's setups run: `workers` at once, each with `threads` torch threads."""
    workers: int
    threads: int


def run_threads(trainer: DictConfig) -> int:
    """The torch threads this run may use: trainer.num_threads, else torch's own count (the cores this process may
    use, or OMP_NUM_THREADS where a launcher that runs jobs side by side has set it)."""
    import torch

    return int(trainer.num_threads) if int(trainer.num_threads) > 0 else torch.get_num_threads()


def plan(cfg: DictConfig, setups: int) -> Plan:
    """pipeline.parallel_setups resolved for this machine: `auto` runs as many setups at once as the run's threads
    allow, one thread each, on a single-process CPU run; one at a time on GPUs and multi-process strategies (their
    devices and ranks are the parallelism)."""
    threads = run_threads(cfg.trainer)
    wanted = cfg.pipeline.parallel_setups
    if wanted == AUTO:
        single_cpu = cfg.trainer.accelerator == "cpu" and cfg.trainer.strategy not in MULTI_PROCESS
        wanted = threads if single_cpu else 1
    workers = max(1, min(int(wanted), setups))
    return Plan(workers=workers, threads=max(1, threads // workers))


def check_config(cfg: DictConfig) -> None:
    """pipeline.parallel_setups: auto or a whole number >= 1; above 1 only where setups can share one machine."""
    from pairwise_rl.checks import check

    value = cfg.pipeline.parallel_setups
    whole = isinstance(value, int) and not isinstance(value, bool) or str(value).isdigit()
    check(value == AUTO or (whole and int(value) >= 1), "pipeline.parallel_setups",
          f"must be auto or a whole number >= 1, got {value!r}")
    check(value == AUTO or int(value) == 1 or cfg.trainer.strategy not in MULTI_PROCESS, "pipeline.parallel_setups",
          f"{value} with trainer.strategy={cfg.trainer.strategy}: a multi-process run builds its setups one after "
          "another (set it to 1 or auto)")


def schedule(keys: Sequence[str]) -> List[int]:
    """The order to start setups in, given each one's RM config key: the first setup of every distinct RM before
    any second one, so workers build different RMs at once instead of waiting on one another's lock. Pure."""
    groups: Dict[str, List[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    order: List[int] = []
    for depth in range(max((len(g) for g in groups.values()), default=0)):
        order.extend(group[depth] for group in groups.values() if depth < len(group))
    return order


def _log_file() -> Optional[str]:
    """The file the run logs to (Hydra's job log), so the workers' lines land in it too."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


def _start_worker(threads: int, log_file: Optional[str], level: int) -> None:
    """Runs once in each worker process: its share of the threads, the run's logging, quiet libraries."""
    import torch

    torch.set_num_threads(threads)
    form = logging.Formatter(f"[%(asctime)s][%(name)s][%(levelname)s][worker {os.getpid()}] - %(message)s")
    handlers: List[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    root = logging.getLogger()
    root.setLevel(level)
    for handler in handlers:
        handler.setFormatter(form)
        root.addHandler(handler)
    from pairwise_rl.library_logging import quiet_libraries

    quiet_libraries()


def _build(cfg: DictConfig, stages: Tuple[str, ...]) -> Dict[str, str]:
    """In a worker: the setup's stages, in order, through the cache (each builds what it needs first)."""
    from pairwise_rl import stages as _registered  # noqa: F401 -- registers the artifact stages
    from pairwise_rl.models import packing
    from pairwise_rl.pipeline import ensure

    packing.set_enabled(cfg.trainer.packing)
    return {stage: str(ensure(cfg, stage)) for stage in stages}


def build_setups(jobs: Sequence[Tuple[DictConfig, Tuple[str, ...]]], rm_keys: Sequence[str],
                 how: Plan) -> List[Dict[str, Path]]:
    """Each (config, stages) job's artifact directories, in the jobs' order, built `how.workers` at a time.

    A failure in one setup stops the others (their partial artifacts resume on the next run, as after any kill)
    and is raised here."""
    from pairwise_rl.pipeline import ensure

    if how.workers == 1:
        return [{stage: ensure(cfg, stage) for stage in stages} for cfg, stages in jobs]
    log.info("building %d setups %d at a time, %d torch thread(s) each (pipeline.parallel_setups)", len(jobs),
             how.workers, how.threads)
    resolved = []
    for cfg, stages in jobs:  # the workers have no Hydra context: they get every interpolation resolved
        cfg = copy.deepcopy(cfg)
        OmegaConf.resolve(cfg)
        cfg.trainer.num_threads = how.threads  # the worker's share, which every Trainer it builds then keeps
        resolved.append((cfg, stages))
    pool = ProcessPoolExecutor(max_workers=how.workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker,
                               initargs=(how.threads, _log_file(), logging.getLogger().level))
    futures = {index: pool.submit(_build, *resolved[index]) for index in schedule(rm_keys)}
    try:
        done, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            raise failed[0].exception()
        return [{stage: Path(path) for stage, path in futures[i].result().items()} for i in range(len(jobs))]
    finally:
        for worker in list(getattr(pool, "_processes", {}).values()):  # a failure or Ctrl-C: stop the others now
            if worker.is_alive() and any(not f.done() for f in futures.values()):
                worker.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
