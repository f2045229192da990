"""The one entry point: `pairwise-rl stage=<sft|rm|ppo|pipeline|compare> [overrides...]`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pairwise_rl.config import register_configs, validate

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
def main(cfg: DictConfig) -> None:
    _quiet_libraries()
    run(cfg)


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
