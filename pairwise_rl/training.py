"""Building Lightning Trainers from config: loggers, progress bar, atomic periodic checkpoints, resume.

Every stage gets the same treatment: local CSV metrics beside its artifact, W&B when configured (offline when not
logged in, and never fatal), checkpoints written atomically every N steps, every M minutes and when the job is
told it will stop, and resume from the newest checkpoint that loads.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from pairwise_rl import precision, provenance
from pairwise_rl.checks import one_of
from pairwise_rl.distributed import MULTI_PROCESS_STRATEGIES, requested_world_size
from pairwise_rl.files import read_jsonl
from pairwise_rl.modules.optim import forget_autocast_casts
from pairwise_rl.pipeline import CHECKPOINT_DIR
from pairwise_rl.rewards.ppo_reward import ppo_label

log = logging.getLogger(__name__)

KEEP_CHECKPOINTS = 2

# Lightning warns when a run resumes mid-epoch; our step-indexed batches make that exact, so the warning is noise.
warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
# FSDP2 warns that an HF model returns views of its outputs; the warning is about writing into them in place,
# which nothing here does (heads.py slices and applies heads out of place).
warnings.filterwarnings("ignore", message=".*returned a view tensor.*")
# PPO keeps its frozen reference policy and RM in eval mode on purpose (SFT and RM modules call train()).
warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode at the start of training.*")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file, then rename: a crash mid-write never leaves a truncated checkpoint behind."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


STOP_SIGNALS = {"TERM": signal.SIGTERM, "USR1": signal.SIGUSR1, "USR2": signal.SIGUSR2, "INT": signal.SIGINT}


class PeriodicCheckpoint(Callback):
    """Save `step-NNNNNN.ckpt` every `every` completed steps (the module's `completed_steps`), every `every_seconds`
    of training (0: never), and at the end of the step during which the process was sent one of `signals`; keep the
    newest two.

    The signals are the ones a job is told it will stop with: SIGTERM (preemption, and SLURM at a time limit before
    its SIGKILL), SIGUSR1 (`sbatch --signal=USR1@90`, Lightning's SLURM requeue) and SIGUSR2 (submitit's time-out
    warning, which `sweep=slurm`'s requeue relies on). After that checkpoint the signal is handled as it would have
    been without this callback (the default ends the process; Lightning stops on SIGTERM; submitit requeues the
    job), so the next attempt resumes from this step instead of the last interval. Every rank saves together: a
    signal any rank received, and rank 0's clock, decide for all of them."""

    def __init__(self, dirpath: Path, every: int, every_seconds: float = 0.0, signals: Sequence[str] = ()):
        self.dirpath, self.every, self.every_seconds = Path(dirpath), every, float(every_seconds)
        self.signals = [STOP_SIGNALS[name] for name in signals]
        self._received: List[int] = []
        self._previous: Dict[int, Any] = {}
        self._last_save = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_save = time.monotonic()
        if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
            return
        for number in self.signals:
            self._previous[number] = signal.getsignal(number)
            signal.signal(number, self._note)

    def _note(self, number: int, frame: Any) -> None:
        self._received.append(number)  # acted on where the step ends: a checkpoint holds whole steps

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = pl_module.completed_steps
        stopping = trainer.strategy.reduce_boolean_decision(bool(self._received), all=False)
        overdue = self.every_seconds > 0 and time.monotonic() - self._last_save >= self.every_seconds
        overdue = trainer.strategy.broadcast(overdue)
        if step % self.every == 0 or overdue or stopping:
            self._save(trainer, step)
        if stopping:
            log.warning("told to stop (%s): saved the checkpoint of step %d; rerun the same command to resume",
                        ", ".join(signal.Signals(n).name for n in self._received) or "another rank", step)
            self._hand_back(self._received or [signal.SIGTERM])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _save(self, trainer: L.Trainer, step: int) -> None:
        trainer.save_checkpoint(self.dirpath / f"step-{step:06d}.ckpt")
        self._last_save = time.monotonic()
        if trainer.is_global_zero:
            for old in sorted(self.dirpath.glob("step-*.ckpt"))[:-KEEP_CHECKPOINTS]:
                old.unlink(missing_ok=True)

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _hand_back(self, received: List[int]) -> None:
        """Each signal, now to the handler it would have met without this callback."""
        previous = dict(self._previous)
        self._restore()
        self._received = []
        for number in dict.fromkeys(received):
            handler = previous.get(number, signal.SIG_DFL)
            if callable(handler):
                handler(number, None)  # Lightning's SIGTERM flag, submitit's requeue, ...
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), number)  # the default action: the process ends with this signal


class ForgetAutocastCasts(Callback):
    """A resumed run's weights come from its checkpoint, loaded after the stage's first forwards (its evaluation
    before training) cached their autocast casts: drop those once training starts (modules/optim.py says why)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        forget_autocast_casts()


def latest_checkpoint(stage_dir: Path) -> Optional[str]:
    """The newest checkpoint that loads; a truncated or corrupt one is reported and skipped."""
    for path in sorted((Path(stage_dir) / CHECKPOINT_DIR).glob("step-*.ckpt"), reverse=True):
        try:
            torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except Exception as error:  # noqa: BLE001 -- any failure to load means "not usable"
            log.warning("checkpoint %s is unreadable (%s); falling back to an older one", path, error)
            continue
        log.info("resuming from %s", path)
        return str(path)
    return None


def flat_config(cfg: DictConfig) -> Dict[str, Any]:
    """The resolved config as {'ppo.kl.coef': 0.05, ...} so a dashboard can group and filter by any key, plus
    what built the run ({'built_by.code_version': ..., 'built_by.git.commit': ..., 'built_by.packages.torch': ...})."""
    flat: Dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk({**OmegaConf.to_container(cfg, resolve=True), "built_by": provenance.current()}, "")
    return flat


LOGGERS = ("wandb", "csv", "none")  # build_loggers: csv writes logs/version_N always; wandb adds W&B beside it
WANDB_MODES = ("auto", "online", "offline", "disabled")


def check_logger_config(cfg: DictConfig) -> None:
    one_of(cfg, "logger.name", LOGGERS)
    one_of(cfg, "logger.mode", WANDB_MODES)


def wandb_mode(requested: str) -> str:
    """'auto' = online when credentials exist, offline otherwise (no network needed, `wandb sync` later)."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested != "auto":
        return requested
    netrc = Path.home() / ".netrc"
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or (netrc.exists() and "api.wandb.ai" in netrc.read_text())
    return "online" if logged_in else "offline"


def run_tags(cfg: DictConfig, stage: str) -> List[str]:
    """The user's tags plus the ablation axes, so the dashboard can filter and group by them."""
    axes = [f"stage={stage}", f"rm={cfg.rm.mode}", f"seed={cfg.seed}"]
    if stage == "ppo":
        axes += [f"ppo={ppo_label(cfg.ppo.reward, cfg.ppo.advantage)}", f"reward={cfg.ppo.reward}",
                 f"advantage={cfg.ppo.advantage}", f"n={cfg.ppo.samples_per_prompt}", f"anchor={cfg.ppo.anchor}"]
        if cfg.ppo.reward == "group":
            group = cfg.ppo.group
            axes += [f"topology={group.topology}" + (f"/k={group.k}" if group.topology == "k_random" else ""),
                     f"fit={group.fit}"]
    return [*cfg.logger.tags, *axes]


class ResilientWandbLogger(WandbLogger):
    """A WandbLogger whose failures (network, quota, a crashed wandb service) are warnings, never fatal.

    After the first failure it stops calling W&B; the CSV logger beside it keeps the full record.
    """

    failed = False

    def _guarded(self, what: str, call, *args, **kwargs):
        if self.failed:
            return None
        try:
            return call(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 -- logging must never kill training
            self.failed = True
            log.warning("W&B %s failed (%s); W&B logging is off for the rest of this run, CSV logs continue",
                        what, error)
            return None

    def log_metrics(self, metrics, step=None):
        return self._guarded("log_metrics", super().log_metrics, metrics, step)

    def log_hyperparams(self, params, *args, **kwargs):
        return self._guarded("log_hyperparams", super().log_hyperparams, params, *args, **kwargs)

    def log_image(self, *args, **kwargs):
        return self._guarded("log_image", super().log_image, *args, **kwargs)

    def log_table(self, *args, **kwargs):
        return self._guarded("log_table", super().log_table, *args, **kwargs)

    def after_save_checkpoint(self, checkpoint_callback) -> None:
        return self._guarded("after_save_checkpoint", super().after_save_checkpoint, checkpoint_callback)

    def finalize(self, status: str) -> None:
        return self._guarded("finalize", super().finalize, status)


def build_loggers(cfg: DictConfig, stage_dir: Path, stage: str, run_name: str) -> List[Logger]:
    if cfg.logger.name == "none":
        return []
    # One CSV version per attempt (logs/version_N): a resumed run appends a new file instead of overwriting.
    loggers: List[Logger] = [CSVLogger(save_dir=str(stage_dir), name="logs")]
    if cfg.logger.name == "wandb":
        try:
            wandb_logger = ResilientWandbLogger(project=cfg.logger.project, entity=cfg.logger.entity,
                                       group=cfg.logger.group or cfg.experiment_name, job_type=stage,
                                       name=run_name, tags=run_tags(cfg, stage), save_dir=str(stage_dir),
                                       config=flat_config(cfg), mode=wandb_mode(cfg.logger.mode))
            wandb_logger.experiment  # start the run now, so a failure falls back here instead of mid-training
            loggers.append(wandb_logger)
        except Exception as error:  # noqa: BLE001 -- W&B trouble must never kill training
            log.warning("W&B logging unavailable (%s); continuing with local CSV logs only", error)
    return loggers


def progress_bar(kind: str) -> List[Callback]:
    if kind == "none":
        return []
    if kind == "rich" and sys.stdout.isatty():
        return [RichProgressBar(leave=True)]
    return [TQDMProgressBar(refresh_rate=20)]


def build_strategy(trainer: DictConfig):
    """trainer.strategy=ddp | fsdp -> Lightning's ModelParallelStrategy (FSDP2; the modules' configure_model picks
    the mesh: sharded for fsdp, replicated for ddp). Checkpoints are single full-state files written by rank 0,
    so a run can resume on a different number of ranks, or on one process."""
    if trainer.strategy not in MULTI_PROCESS_STRATEGIES:
        return "auto"
    from lightning.pytorch.strategies import ModelParallelStrategy

    return ModelParallelStrategy(data_parallel_size=requested_world_size(trainer), tensor_parallel_size=1,
                                 save_distributed_checkpoint=False)


def build_trainer(cfg: DictConfig, stage_dir: Path, *, stage: str, run_name: str, val_every: int,
                  checkpoint_every: int, gradient_clip_val: Optional[float] = None,
                  log_every_n_steps: Optional[int] = None,
                  callbacks: Optional[List[Callback]] = None) -> L.Trainer:
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    return L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=build_strategy(cfg.trainer),
        use_distributed_sampler=False,  # step-indexed batches split themselves across ranks (data/batches.py)
        precision=precision.resolve(cfg).lightning,  # auto decided for this machine and model
        max_epochs=1,  # one epoch of step-indexed batches; its length is the stage's step budget
        val_check_interval=val_every,
        gradient_clip_val=gradient_clip_val,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        logger=build_loggers(cfg, stage_dir, stage, run_name),
        log_every_n_steps=log_every_n_steps or cfg.trainer.log_every_n_steps,
        enable_checkpointing=False,  # PeriodicCheckpoint owns checkpointing
        enable_progress_bar=cfg.trainer.progress_bar != "none",
        enable_model_summary=False,
        callbacks=[PeriodicCheckpoint(Path(stage_dir) / CHECKPOINT_DIR, checkpoint_every,
                                      every_seconds=60.0 * cfg.trainer.checkpoint_every_minutes,
                                      signals=cfg.trainer.checkpoint_signals), ForgetAutocastCasts(),
                   *progress_bar(cfg.trainer.progress_bar), *(callbacks or [])],
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(stage_dir),
    )


def _log_media(logger: WandbLogger, images: Mapping[str, Path], tables: Mapping[str, Union[Path, Sequence[dict]]],
               max_rows: int) -> None:
    """Plots as W&B images and sample rows as W&B tables, so the dashboard shows the evidence behind a number."""
    for key, path in images.items():
        if Path(path).exists():
            logger.log_image(key=key, images=[str(path)])
    for key, rows in tables.items():
        rows = read_jsonl(rows) if isinstance(rows, Path) else rows  # a JSONL file the stage wrote
        rows = list(rows)[:max_rows]
        if rows:
            columns = list(rows[0])
            logger.log_table(key=key, columns=columns, data=[[row.get(c) for c in columns] for row in rows])


def finish_loggers(trainer: L.Trainer, metrics: Dict[str, float], images: Optional[Mapping[str, Path]] = None,
                   tables: Optional[Mapping[str, Union[Path, Sequence[dict]]]] = None,
                   max_table_rows: int = 200) -> None:
    """Record final metrics as summary values, W&B media (images, sample tables: rows or a JSONL path), and close
    the loggers. Loggers exist on rank 0 only (Lightning's rule), so the other ranks return at once.

    Any logger failure is a warning: the artifact on disk is the record, the dashboard a view of it.
    """
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        try:
            logger.log_metrics({f"final/{k}": v for k, v in metrics.items()}, step=trainer.global_step)
            if isinstance(logger, WandbLogger):
                _log_media(logger, images or {}, tables or {}, max_table_rows)
            logger.finalize("success")
            if isinstance(logger, WandbLogger):
                # also after a failure: an unfinished run stays this process's active run, and the next stage's
                # wandb.init would return it (that stage's metrics would land in this stage's run)
                logger.experiment.finish()
        except Exception as error:  # noqa: BLE001
            log.warning("logger %s failed at finish (%s)", type(logger).__name__, error)


class InterruptedRun(RuntimeError):
    """fit() returned without finishing (e.g. Ctrl-C); the artifact must not be marked complete."""


def fit(trainer: L.Trainer, module: L.LightningModule, stage_dir: Path) -> None:
    """Resume from the newest good checkpoint of this stage (if any) and train to the end of the budget."""
    trainer.fit(module, ckpt_path=latest_checkpoint(stage_dir), weights_only=False)
    if trainer.interrupted or trainer.state.status.value != "finished":
        raise InterruptedRun(f"training in {stage_dir} stopped early ({trainer.state.status.value}); "
                             "rerun the same command to resume from its last checkpoint")
