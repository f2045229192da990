"""The Bradley-Terry reward model: the LM backbone with a scalar head, pooled at the final (eos) token."""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch

from pairwise_rl.algos.preference import bt_loss, bt_probability
from pairwise_rl.data.encoding import encode_scored_sequences
from pairwise_rl.data.records import Preference
from pairwise_rl.models.factory import load_scalar_model, load_tokenizer
from pairwise_rl.models.heads import last_hidden, scalar_head
from pairwise_rl.rewards.base import RM_MODES, PairProbabilities, RewardModel


@RM_MODES.register("bt")
class BTReward(RewardModel):
    mode = "bt"
    has_score = True

    def __init__(self, *args, margin: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.margin = margin

    def _scores(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        batch = encode_scored_sequences(self.tokenizer, prompts, responses, self.max_prompt_tokens,
                                        self.max_response_tokens)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        self.rows_judged += len(responses)
        return scalar_head(self.model, last_hidden(self.model, batch["input_ids"], batch["attention_mask"]))

    def training_loss(self, pairs: Sequence[Preference]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        # Chosen and rejected go through one forward pass.
        prompts = [p.prompt for p in pairs]
        scores = self._scores(prompts + prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs])
        r_chosen, r_rejected = scores.float().chunk(2)
        soft = [p.label for p in pairs]
        target = None if all(q is None for q in soft) else torch.tensor([1.0 if q is None else q for q in soft])
        loss = bt_loss(r_chosen, r_rejected, self.margin, target)
        return loss, {"accuracy": (r_chosen > r_rejected).float().mean().detach(),
                      "reward_gap": (r_chosen - r_rejected).mean().detach()}

    def _pair_probabilities(self, prompts, y1, y2) -> PairProbabilities:
        scores = self._scores(list(prompts) + list(prompts), list(y1) + list(y2)).float()
        r1, r2 = scores.chunk(2)
        return PairProbabilities(bt_probability(r1, r2))

    @torch.no_grad()
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        with self.numerics():
            out = torch.cat([self._scores(prompts[i:i + self.batch_size], responses[i:i + self.batch_size]).float()
                             for i in range(0, len(prompts), self.batch_size)]).cpu()
        self.model.train(was_training)
        return out

    def match_scorer(self, prompts, responses):
        """Each response scored once (n rows per group, whatever the matches), P = sigmoid of score differences."""
        scores = self.score(prompts, responses)
        return lambda a, b: bt_probability(scores[a], scores[b])

    def spec(self):
        return {**super().spec(), "margin": self.margin}

    @classmethod
    def config_spec(cls, cfg):
        return {**super().config_spec(cfg), "margin": cfg.rm.margin}

    @classmethod
    def from_pretrained(cls, directory: str, dtype: str = "float32", **spec) -> "BTReward":
        return cls(load_scalar_model(directory, dtype), load_tokenizer(directory), **spec)
