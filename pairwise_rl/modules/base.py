"""What the supervised stages (SFT, RM) share: a trainable HF model, a step budget, exact resume."""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel

from pairwise_rl.distributed import compute_device
from pairwise_rl.models.sharding import local_fraction, parallelize
from pairwise_rl.modules.guard import NonFiniteGuard


class StepTrainedModule(L.LightningModule):
    """One optimiser step per batch; `completed_steps` drives checkpointing, `resume_step` the data restart."""

    def __init__(self, model: PreTrainedModel, stage: str, trainer: DictConfig):
        super().__init__()
        self.model = model
        self.trainer_cfg = trainer
        self.resume_step = 0
        self.guard = NonFiniteGuard(trainer.on_nonfinite, stage)
        self.local_param_fraction = 1.0

    def configure_model(self) -> None:
        """trainer=ddp | fsdp: shard the model over the ranks (Lightning calls this before the optimisers)."""
        parallelize(self.model, self.trainer_cfg, compute_device(self.trainer_cfg))
        self.local_param_fraction = local_fraction(self.model)

    def checked_loss(self, loss: torch.Tensor) -> Optional[torch.Tensor]:
        """The loss, or None (Lightning then skips backward and the optimiser step) when it is not finite and
        trainer.on_nonfinite=skip; with stop, NonFiniteError ends the run before the weights change."""
        if not self.guard.ok(self.trainer.global_step, loss=loss):
            self.log("train/nonfinite_skipped", float(self.guard.skipped))
            return None
        return loss

    def on_fit_start(self) -> None:
        self.model.train()  # from_pretrained returns eval mode; training must not inherit it

    @property
    def completed_steps(self) -> int:
        return self.trainer.global_step

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["nonfinite_guard"] = self.guard.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.resume_step = int(checkpoint["global_step"])
        self.guard.load_state_dict(checkpoint.get("nonfinite_guard", {}))

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """Tensor batches move as usual; text records stay put (the model-side code tokenizes onto the device)."""
        if isinstance(batch, dict):
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        return batch
