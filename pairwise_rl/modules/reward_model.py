"""Reward-model training: one loop for every RM mode (the mode's RewardModel supplies the loss)."""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from omegaconf import DictConfig

from pairwise_rl.data.batches import step_loader
from pairwise_rl.data.records import Preference
from pairwise_rl.eval.preference import PairSet, judge_pairs
from pairwise_rl.modules.base import StepTrainedModule
from pairwise_rl.modules.optim import adamw, warmup_cosine
from pairwise_rl.rewards.base import RewardModel


class RewardModelModule(StepTrainedModule):
    def __init__(self, judge: RewardModel, train_pairs: Sequence[Preference], val_pairs: PairSet,
                 cfg: DictConfig, seed: int):
        super().__init__(judge.model, "rm", cfg.trainer)  # a submodule: Lightning moves and saves it
        self.judge = judge
        self.train_pairs, self.val_pairs = list(train_pairs), val_pairs
        self.cfg, self.seed = cfg, seed

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return step_loader(len(self.train_pairs), self.cfg.rm.batch_size, self.cfg.rm.max_steps, self.seed,
                           lambda indices, step: [self.train_pairs[i] for i in indices], "rm", self.resume_step)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader([0], batch_size=None)  # one tick: validation judges the whole set

    def training_step(self, pairs: List[Preference], batch_idx: int) -> torch.Tensor:
        loss, stats = self.judge.training_loss(pairs)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(pairs), sync_dist=True)
        for name, value in stats.items():
            self.log(f"train/{name}", value, batch_size=len(pairs))
        return self.checked_loss(loss)

    def validation_step(self, batch, batch_idx: int) -> None:
        metrics = judge_pairs(self.judge, self.val_pairs, self.cfg.rm.ece_bins).metrics
        for name, value in metrics.items():
            self.log(f"val/{name}", value, prog_bar=name == "accuracy", batch_size=len(self.val_pairs.prompts))

    def configure_optimizers(self) -> Dict:
        optimizer = adamw(self.model.parameters(), self.cfg.rm.lr, self.cfg.rm.weight_decay)
        schedule = warmup_cosine(optimizer, self.cfg.rm.warmup_steps, self.cfg.rm.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
