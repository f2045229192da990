"""What the supervised stages (SFT, RM) share: a trainable HF model, a step budget, exact resume."""

from __future__ import annotations

import lightning as L
import torch
from transformers import PreTrainedModel


class StepTrainedModule(L.LightningModule):
    """One optimiser step per batch; `completed_steps` drives checkpointing, `resume_step` the data restart."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model
        self.resume_step = 0

    def on_fit_start(self) -> None:
        self.model.train()  # from_pretrained returns eval mode; training must not inherit it

    @property
    def completed_steps(self) -> int:
        return self.trainer.global_step

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.resume_step = int(checkpoint["global_step"])

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """Tensor batches move as usual; text records stay put (the model-side code tokenizes onto the device)."""
        if isinstance(batch, dict):
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        return batch
