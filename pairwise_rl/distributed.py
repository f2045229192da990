"""Multi-process runs (trainer=ddp | fsdp): one process group for the whole command; rank 0 owns the files.

Every rank runs the same command from the start (torchrun, srun, or the CLI relaunching itself under torchrun),
so the work before and between `trainer.fit` calls -- evaluation, artifact export, the stage graph -- runs in
lockstep on every rank. The process group is joined once, before the first stage, and Lightning reuses it.

The division of labour:
* compute: every rank. Training splits each step's batch across ranks (the configured batch sizes are global);
  evaluation is replicated (every rank judges the whole held-out set with the same seeds), which keeps the
  sharded models' collectives in step and makes every rank's numbers the same.
* files: rank 0 writes artifacts, COMPLETE markers and logs; the others wait at a barrier and then read them.
* decisions: made on rank 0 and broadcast (is an artifact cached?) or agreed by all (is a loss finite?), so no
  rank takes a branch the others do not -- a rank that skips a collective hangs the rest.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any, List, Optional

import torch
import torch.distributed as dist
from omegaconf import DictConfig

log = logging.getLogger(__name__)

MULTI_PROCESS_STRATEGIES = ("ddp", "fsdp")
RELAUNCHED = "PAIRWISE_RL_RELAUNCHED"  # set in the children of our own torchrun relaunch (never relaunch twice)


# ------------------------------------------------------------------------------------------------ who am I
def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def requested_world_size(trainer: DictConfig) -> int:
    """How many processes the trainer config asks for (1 unless the strategy is ddp or fsdp)."""
    if trainer.strategy not in MULTI_PROCESS_STRATEGIES:
        return 1
    return int(trainer.devices) * int(trainer.num_nodes)


def compute_device(trainer: DictConfig) -> torch.device:
    """Where this rank's models live: its own GPU (LOCAL_RANK) or the CPU."""
    wants_gpu = trainer.accelerator == "gpu" or (trainer.accelerator == "auto" and torch.cuda.is_available())
    if wants_gpu:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------- joining a group
def _launcher_environment():
    """Lightning's description of the launcher that started us (torchrun or SLURM's srun), or None."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect():
        return TorchElasticEnvironment()
    if SLURMEnvironment.detect() and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return SLURMEnvironment()
    return None


def join_process_group(trainer: DictConfig) -> bool:
    """Join the process group set up by the launcher; False when this is a single-process run.

    Raises when the config asks for N processes but the launcher started a different number: silently training
    on fewer ranks than configured changes the per-rank batch and the run's meaning.
    """
    wanted = requested_world_size(trainer)
    if wanted == 1:
        return False
    if is_distributed():
        return True
    env = _launcher_environment()
    if env is None:
        return False
    if env.world_size() != wanted:
        raise RuntimeError(f"trainer.devices x trainer.num_nodes = {wanted}, but the launcher started "
                           f"{env.world_size()} processes; make them agree")
    from lightning.fabric.utilities.distributed import _init_dist_connection

    device = compute_device(trainer)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    _init_dist_connection(env, "nccl" if device.type == "cuda" else "gloo")
    log.info("rank %d of %d joined the process group (%s)", rank(), world_size(), type(env).__name__)
    if rank() > 0:  # every rank computes the same tables and progress; rank 0 reports them, the rest warn only
        logging.getLogger("pairwise_rl").setLevel(logging.WARNING)
    return True


def leave_process_group() -> None:
    """Tear the group down once every rank is done: a rank that left early could abort a peer's last receive."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def relaunch_command(processes: int, overrides: List[str], run_dir: str) -> List[str]:
    """The torchrun command that reruns this CLI on `processes` local ranks, in the same Hydra run directory."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", "pairwise_rl.cli", *overrides, f"hydra.run.dir={run_dir}",
            # one log file per rank (rank_0.log ...); the launching process already saved the run's config
            "hydra.job.name=rank_${oc.env:RANK}", "hydra.output_subdir=null"]


def needs_relaunch(trainer: DictConfig) -> bool:
    return (requested_world_size(trainer) > 1 and _launcher_environment() is None
            and not os.environ.get(RELAUNCHED))


def relaunch(trainer: DictConfig) -> None:
    """Rerun this command under torchrun with trainer.devices processes (one node); raise if any rank fails.

    Multi-node runs are started by the cluster (srun, or torchrun on each node): a single process cannot start
    processes on other machines.
    """
    from hydra.core.hydra_config import HydraConfig

    if int(trainer.num_nodes) > 1:
        raise RuntimeError(f"trainer.num_nodes={trainer.num_nodes}: start multi-node runs with srun (sweep=slurm) "
                           "or torchrun on every node; this process can only start ranks on its own machine")
    hydra = HydraConfig.get()
    command = relaunch_command(int(trainer.devices), list(hydra.overrides.task), hydra.runtime.output_dir)
    log.info("starting %d processes: %s", trainer.devices, " ".join(command))
    result = subprocess.run(command, env={**os.environ, RELAUNCHED: "1"}, cwd=hydra.runtime.cwd)
    if result.returncode != 0:
        raise RuntimeError(f"the {trainer.devices}-process run failed (exit {result.returncode}); see the ranks' "
                           "output above")


# -------------------------------------------------------------------------------------------- collectives
def broadcast(value: Any, src: int = 0) -> Any:
    """Rank `src`'s value on every rank (any picklable object)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_true(flag: bool) -> bool:
    """True on every rank iff `flag` is true on every rank."""
    if not is_distributed():
        return flag
    return all(gather_objects(bool(flag)))


def gather_objects(value: Any) -> List[Any]:
    """Every rank's value, in rank order, on every rank."""
    if not is_distributed():
        return [value]
    out: List[Optional[Any]] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The elementwise sum over ranks (a new tensor; the input is unchanged)."""
    if not is_distributed():
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def rank_slice(items: List[Any]) -> List[Any]:
    """This rank's share of a global batch: every world_size-th item, starting at its rank."""
    return items[rank()::world_size()]
