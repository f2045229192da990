"""Supervised fine-tuning of the policy on a task's demonstrations (imperfect ones, on digits)."""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pairwise_rl.data.batches import step_loader
from pairwise_rl.data.encoding import encode_sft_batch
from pairwise_rl.data.records import Prompt
from pairwise_rl.models.generation import policy_samples
from pairwise_rl.models.heads import causal_lm_loss
from pairwise_rl.modules.base import StepTrainedModule
from pairwise_rl.modules.optim import adamw, warmup_cosine
from pairwise_rl.tasks.base import Task


class SFTModule(StepTrainedModule):
    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, demos: Sequence[Prompt],
                 val_prompts: Sequence[Prompt], task: Task, cfg: DictConfig, seed: int):
        super().__init__(model, "sft", cfg.trainer)
        self.tokenizer, self.task = tokenizer, task
        self.demos, self.val_prompts = list(demos), list(val_prompts)
        self.cfg, self.seed = cfg, seed

    # ---------------------------------------------------------------------------------------------- data
    def _make_batch(self, indices: List[int], step: int) -> Dict[str, torch.Tensor]:
        picked = [self.demos[i] for i in indices]
        return encode_sft_batch(self.tokenizer, [d.prompt for d in picked], [d.reference for d in picked],
                                self.cfg.data.max_prompt_tokens, self.cfg.data.max_response_tokens)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return step_loader(len(self.demos), self.cfg.sft.batch_size, self.cfg.sft.max_steps, self.seed,
                           self._make_batch, "sft", self.resume_step)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.val_prompts, batch_size=len(self.val_prompts), collate_fn=list)

    # ---------------------------------------------------------------------------------------------- loops
    def training_step(self, batch: Dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = causal_lm_loss(self.model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        return self.checked_loss(loss)

    def validation_step(self, prompts: List[Prompt], batch_idx: int) -> None:
        """Held-out NLL of the reference responses (every task with references), and the gold score of sampled
        and greedy responses per prompt group (tasks with a gold judge)."""
        with_reference = [p for p in prompts if p.reference is not None]
        if with_reference:
            batch = encode_sft_batch(self.tokenizer, [p.prompt for p in with_reference],
                                     [p.reference for p in with_reference], self.cfg.data.max_prompt_tokens,
                                     self.cfg.data.max_response_tokens)
            batch = {k: v.to(self.device) for k, v in batch.items()}
            loss = causal_lm_loss(self.model, batch["input_ids"], batch["attention_mask"], batch["labels"])
            self.log("val/loss", loss, prog_bar=self.task.gold is None, batch_size=len(with_reference))
        if self.task.gold is None:
            return
        texts = [p.prompt for p in prompts]
        for mode, greedy in (("sampled", False), ("greedy", True)):
            responses = policy_samples(self.model, self.tokenizer, texts, self.cfg.generation,
                                       self.cfg.data.max_prompt_tokens, greedy=greedy)
            golds = [self.task.gold.score(p, r) for p, r in zip(texts, responses)]
            for group, value in self.task.by_group(texts, golds).items():
                self.log(f"val/gold_{mode}/{group}", value, prog_bar=(group == "all" and not greedy),
                         batch_size=len(prompts))

    def configure_optimizers(self):
        optimizer = adamw(self.model.parameters(), self.cfg.sft.lr, self.cfg.sft.weight_decay)
        schedule = warmup_cosine(optimizer, self.cfg.sft.warmup_steps, self.cfg.sft.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
