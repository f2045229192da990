"""What a training loop does when a loss, reward, advantage or KL goes NaN / inf (trainer.on_nonfinite).

stop (default): raise NonFiniteError before the bad values reach an optimiser. Nothing after the last periodic
checkpoint is saved, so that checkpoint stays the last good state and a rerun resumes from it.
skip: drop this batch (no optimiser step), count it, and go on; the count is logged and reported at the end.

In a data-parallel run the ranks agree: one rank's NaN stops or skips the step on all of them (a rank that
skipped alone would leave the others waiting in the gradient reduction).
"""

from __future__ import annotations

import logging
from typing import Optional

import torch

from pairwise_rl import distributed
from pairwise_rl.algos.finite import nonfinite_names

log = logging.getLogger(__name__)

POLICIES = ("stop", "skip")


class NonFiniteError(FloatingPointError):
    """Training met NaN / inf; the message names the quantities, the stage and the step."""


class NonFiniteGuard:
    def __init__(self, policy: str, stage: str):
        if policy not in POLICIES:
            raise ValueError(f"trainer.on_nonfinite must be one of {POLICIES}, got {policy!r}")
        self.policy, self.stage = policy, stage
        self.skipped = 0

    def ok(self, step: int, **tensors: Optional[torch.Tensor]) -> bool:
        """True if every tensor is finite; otherwise stop (raise) or count a skip and return False."""
        bad = nonfinite_names(**tensors)
        if distributed.all_true(not bad):
            return True
        bad = bad or [f"values on another rank (this is rank {distributed.rank()})"]
        where = f"{self.stage} step {step}: non-finite {', '.join(bad)}"
        if self.policy == "stop":
            raise NonFiniteError(f"{where}. Stopped before the optimiser step, so the newest checkpoint is the last "
                                 "good state: fix the cause (lr, data, reward scale) and rerun the same command to "
                                 "resume from it, or set trainer.on_nonfinite=skip to drop such batches.")
        self.skipped += 1
        log.warning("%s; batch skipped (%d so far, trainer.on_nonfinite=skip)", where, self.skipped)
        return False

    def state_dict(self) -> dict:
        return {"skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.skipped = int(state.get("skipped", 0))
