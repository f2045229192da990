"""Optimiser + LR schedule shared by the stage modules."""

from __future__ import annotations

import math
from typing import Iterable

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  final_fraction: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup to the base LR, then cosine decay to `final_fraction` of it at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        progress = min(1.0, (step - warmup_steps) / max(total_steps - warmup_steps, 1))
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def forget_autocast_casts(*_) -> None:
    """Drop autocast's cached low-precision copies of the trainable weights.

    Autocast casts each trainable weight once and keeps the cast until the outermost autocast region ends. A stage
    runs whole inside one (pipeline.ensure), so without this every forward after the first optimiser step would
    still compute with the weights from before it: measured, a bf16 LoRA RM trained 40 steps and came out exactly
    as it started (the adapters' and the score head's casts never changed).
    """
    torch.clear_autocast_cache()


def adamw(parameters: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    optimizer = torch.optim.AdamW([p for p in parameters if p.requires_grad], lr=lr, weight_decay=weight_decay,
                                  betas=(0.9, 0.95))
    optimizer.register_step_post_hook(forget_autocast_casts)  # the weights changed: so must their casts
    return optimizer
