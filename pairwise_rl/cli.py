"""The one entry point: `pairwise-rl stage=<stage> [group=option ...] [key=value ...]` (`--help` lists the stages).

An error the project raises on purpose about the user's input (`errors.UserError`: a config value, a data file or
row, a missing model or dataset, an artifact the cache policy refuses) prints two lines, what is wrong and the fix,
and exits with status 1; `HYDRA_FULL_ERROR=1` shows its traceback instead. Any other exception is a bug and keeps
Hydra's traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pairwise_rl.config import register_configs, validate
from pairwise_rl.errors import UserError, report
from pairwise_rl.library_logging import quiet_libraries

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")

register_configs()
log = logging.getLogger("pairwise_rl")


def run(cfg: DictConfig):
    """Validate, then dispatch on `stage`. Separate from `main` so tests can call it on a composed config."""
    validate(cfg)
    from pairwise_rl import distributed  # heavy imports only after the config is known to be good

    if distributed.needs_relaunch(cfg.trainer):  # trainer=ddp|fsdp with N devices, started as one process
        return distributed.relaunch(cfg.trainer)
    joined = distributed.join_process_group(cfg.trainer)
    if cfg.trainer.num_threads > 0:  # every stage of the run, not only the ones that build a Lightning trainer
        import torch

        torch.set_num_threads(cfg.trainer.num_threads)
    from pairwise_rl.models import packing

    packing.set_enabled(cfg.trainer.packing)
    from pairwise_rl.stages import STAGES

    result = STAGES.get(cfg.stage)(cfg)
    if joined:
        distributed.leave_process_group()
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    quiet_libraries()
    try:
        run(cfg)
    except UserError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(report(error), file=sys.stderr)
        sys.exit(1)
    except SystemExit as stop:  # Lightning's way out after a SIGTERM is SystemExit(None), which would exit 0
        lightning = sys.modules.get("lightning.pytorch.utilities.exceptions")
        if lightning is None or not isinstance(stop, lightning.SIGTERMException):
            raise
        # training.PeriodicCheckpoint saved the steps done; a scheduler must see a stop, not a success
        print("stopped by SIGTERM after saving a checkpoint; rerun the same command to resume", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)


def main() -> None:
    """`--help` / `-h` print the tool's own help (Hydra's is `--hydra-help`); everything else goes to Hydra."""
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        from pairwise_rl.cli_help import help_text

        print(help_text(Path(CONF_DIR)))
        return
    _hydra_main()


if __name__ == "__main__":
    main()
