"""Reward-model training: one loop for every RM mode (the mode's RewardModel supplies the loss)."""

from __future__ import annotations

from typing import Dict, List, Sequence

import lightning as L
import torch
from omegaconf import DictConfig

from pairwise_rl.data.batches import ResumeSampler, StepBatches
from pairwise_rl.data.records import Preference
from pairwise_rl.eval.preference import PairSet, judge_pairs
from pairwise_rl.modules.optim import adamw, warmup_cosine
from pairwise_rl.rewards.base import RewardModel


class RewardModelModule(L.LightningModule):
    def __init__(self, judge: RewardModel, train_pairs: Sequence[Preference], val_pairs: PairSet,
                 cfg: DictConfig, seed: int):
        super().__init__()
        self.judge = judge
        self.model = judge.model  # registered as a submodule so Lightning moves, shards and checkpoints it
        self.train_pairs, self.val_pairs = list(train_pairs), val_pairs
        self.cfg, self.seed = cfg, seed
        self.resume_step = 0

    def on_fit_start(self) -> None:
        self.model.train()  # from_pretrained returns eval mode; training must not inherit it

    @property
    def completed_steps(self) -> int:
        return self.trainer.global_step

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.resume_step = int(checkpoint["global_step"])

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        batches = StepBatches(len(self.train_pairs), self.cfg.rm.batch_size, self.cfg.rm.max_steps, self.seed,
                              lambda indices, step: [self.train_pairs[i] for i in indices], purpose="rm")
        return torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda x: x,
                                           sampler=ResumeSampler(self.cfg.rm.max_steps, self.resume_step))

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader([0], batch_size=None)  # one tick: validation judges the whole set

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        return batch  # text records; the judge tokenizes and moves tensors itself

    def training_step(self, pairs: List[Preference], batch_idx: int) -> torch.Tensor:
        loss, stats = self.judge.training_loss(pairs)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(pairs))
        for name, value in stats.items():
            self.log(f"train/{name}", value, batch_size=len(pairs))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        metrics = judge_pairs(self.judge, self.val_pairs, self.cfg.rm.ece_bins).metrics
        for name, value in metrics.items():
            self.log(f"val/{name}", value, prog_bar=name == "accuracy", batch_size=len(self.val_pairs.prompts))

    def configure_optimizers(self) -> Dict:
        optimizer = adamw(self.model.parameters(), self.cfg.rm.lr, self.cfg.rm.weight_decay)
        schedule = warmup_cosine(optimizer, self.cfg.rm.warmup_steps, self.cfg.rm.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
