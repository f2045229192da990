"""The gold judge of the digits task behind the reward interface: an oracle RM for upper-bound runs.

score(prompt, y) = gold score g; compare(prompt, y, anchor) = the annotator's P(y preferred) =
sigmoid((g_y - g_anchor) / tau_kind). `rm=gold` skips RM training; PPO against it shows what the RLHF setup
achieves when the reward is right, separating RM error from optimisation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence

import torch
from omegaconf import DictConfig

from pairwise_rl.checks import check
from pairwise_rl.files import atomic_write_text
from pairwise_rl.rewards.base import RM_MODES, SPEC_FILE, PairProbabilities, RewardModel
from pairwise_rl.tasks.digits_task import DigitsGold


@RM_MODES.register("gold")
class GoldReward(RewardModel):
    mode = "gold"
    has_score = True

    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        check(cfg.data.task == "digits", "rm.mode", "the gold judge exists only for the digits task")

    def __init__(self, tau: Dict[str, float], max_prompt_tokens: int = 0, max_response_tokens: int = 0,
                 batch_size: int = 256):
        super().__init__(None, None, max_prompt_tokens, max_response_tokens, batch_size)
        self.tau = dict(tau)
        self.gold = DigitsGold(self.tau)  # the task's own gold judge and annotator

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def training_loss(self, pairs):
        raise TypeError("the gold judge is not trained (rm=gold skips RM training)")

    def _pair_probabilities(self, prompts, y1, y2) -> PairProbabilities:
        self.rows_judged += len(prompts)
        return PairProbabilities(torch.tensor([self.gold.pair_probability(p, a, b)
                                               for p, a, b in zip(prompts, y1, y2)]))

    def pair_probabilities(self, prompts, y1, y2) -> PairProbabilities:
        return self._pair_probabilities(prompts, y1, y2)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        self.rows_judged += len(prompts)
        return torch.tensor([self.gold.score(p, r) for p, r in zip(prompts, responses)])

    def spec(self):
        return {**super().spec(), "tau": self.tau}

    def save(self, directory: Path) -> None:
        atomic_write_text(Path(directory) / SPEC_FILE, json.dumps(self.spec(), indent=2) + "\n")  # rank 0 writes

    @classmethod
    def config_spec(cls, cfg):
        return {**super().config_spec(cfg), "tau": dict(cfg.data.digits.tau)}

    @classmethod
    def from_pretrained(cls, directory: str, dtype: str = "float32", **spec) -> "GoldReward":
        return cls(**spec)
