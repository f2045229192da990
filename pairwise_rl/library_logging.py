"""What the libraries print: one copy of each line, no download progress bars. Used by the CLI's process and by
every worker process it starts (stages/setup_pool.py), which begin with no logging set up."""

from __future__ import annotations

import logging
import os


def quiet_libraries() -> None:
    """Lightning logs through its own console handler and through Hydra's root handler; keep one copy."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).propagate = False
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
