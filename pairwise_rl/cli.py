"""The one entry point: `pairwise-rl stage=<stage> [group=option ...] [key=value ...]` (`--help` lists the stages).

An error the project raises on purpose about the user's input (`errors.UserError`: a config value, a data file or
row, a missing model or dataset, an artifact the cache policy refuses) prints two lines, what is wrong and the fix,
and exits with status 1; `HYDRA_FULL_ERROR=1` shows its traceback instead. Any other exception is a bug and keeps
Hydra's traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pairwise_rl.config import register_configs, validate
from pairwise_rl.errors import UserError, report

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
    from pairwise_rl.models import packing

    packing.set_enabled(cfg.trainer.packing)
    from pairwise_rl.stages import STAGES

    result = STAGES.get(cfg.stage)(cfg)
    if joined:
        distributed.leave_process_group()
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    _quiet_libraries()
    try:
        run(cfg)
    except UserError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(report(error), file=sys.stderr)
        sys.exit(1)


def main() -> None:
    """`--help` / `-h` print the tool's own help (Hydra's is `--hydra-help`); everything else goes to Hydra."""
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        from pairwise_rl.cli_help import help_text

        print(help_text(Path(CONF_DIR)))
        return
    _hydra_main()


def _quiet_libraries() -> None:
    """Lightning logs through its own console handler and through Hydra's root handler; keep one copy."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).propagate = False
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


if __name__ == "__main__":
    main()
