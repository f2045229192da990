"""The reward interface PPO calls, and the registry of RM modes.

Every judge answers P(y1 beats y2) for a batch of pairs (`pair_probabilities`); from it:
  * compare(prompts, responses, anchors) = P(response beats anchor)    -- pairwise PPO's reward
  * score(prompts, responses)             = an absolute scalar          -- only judges that have one (BT)
Training losses live here too, so the reward-model LightningModule is the same loop for every mode.
"""

from __future__ import annotations

import abc
import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple, Type

import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pairwise_rl.data.records import Preference
from pairwise_rl.files import atomic_write_text
from pairwise_rl.models.sharding import save_pretrained
from pairwise_rl.registry import Registry

SPEC_FILE = "reward_model.json"


@dataclass
class PairProbabilities:
    p: torch.Tensor                        # P(y1 beats y2), the number every metric and reward uses
    p_first: Optional[torch.Tensor] = None   # generative: P(A wins | y1 as A)
    p_second: Optional[torch.Tensor] = None  # generative: P(A wins | y2 as A)


class RewardModel(abc.ABC):
    mode: str = ""
    has_score: bool = False

    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        """Reject values of the keys this mode reads (config.validate calls it for rm.mode, every pipeline setup's
        rm and judge.mode); the rm.* training keys every mode shares are checked with the schema."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_prompt_tokens: int,
                 max_response_tokens: int, batch_size: int = 256):
        self.model, self.tokenizer = model, tokenizer
        self.max_prompt_tokens, self.max_response_tokens = max_prompt_tokens, max_response_tokens
        self.batch_size = batch_size
        self.rows_judged = 0  # sequences through the judge so far (BT: one per response; generative: one per order)
        self.full_precision = False  # judge in fp32 even inside a bf16-mixed stage (ppo.rm_precision=float32)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---------------------------------------------------------------------------------------- training
    @abc.abstractmethod
    def training_loss(self, pairs: Sequence[Preference]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Loss on a batch of labelled pairs, plus detached statistics to log."""

    # ---------------------------------------------------------------------------------------- judging
    @abc.abstractmethod
    def _pair_probabilities(self, prompts: Sequence[str], y1: Sequence[str], y2: Sequence[str]) -> PairProbabilities:
        """One batch, gradients allowed (callers decide)."""

    def numerics(self):
        """The context a judging forward runs in: the stage's (its autocast), or fp32 with autocast off."""
        return torch.autocast(self.device.type, enabled=False) if self.full_precision else nullcontext()

    @torch.no_grad()
    def pair_probabilities(self, prompts: Sequence[str], y1: Sequence[str], y2: Sequence[str]) -> PairProbabilities:
        """P(y1 beats y2) for any number of pairs, in chunks of batch_size, no gradients."""
        was_training = self.model.training
        self.model.eval()
        with self.numerics():
            chunks = [self._pair_probabilities(prompts[i:i + self.batch_size], y1[i:i + self.batch_size],
                                               y2[i:i + self.batch_size])
                      for i in range(0, len(prompts), self.batch_size)]
        self.model.train(was_training)

        def cat(name: str) -> Optional[torch.Tensor]:
            parts = [getattr(c, name) for c in chunks]
            return None if parts[0] is None else torch.cat(parts).float().cpu()

        return PairProbabilities(cat("p"), cat("p_first"), cat("p_second"))

    def compare(self, prompts: Sequence[str], responses: Sequence[str], anchors: Sequence[str]) -> torch.Tensor:
        """P(response beats anchor), batched, without gradients."""
        return self.pair_probabilities(list(prompts), list(responses), list(anchors)).p

    @property
    def order_sensitive(self) -> bool:
        """Whether one judged row's verdict depends on which response is shown first (group matches then draw the
        order by a coin); a judge that averages both orders or scores each response alone is not."""
        return False

    def match_scorer(self, prompts: Sequence[str], responses: Sequence[str]) -> Callable[[torch.Tensor, torch.Tensor],
                                                                                         torch.Tensor]:
        """For the rows of one batch: (a, b) row indices -> P(responses[a] beats responses[b]) (prompts[a] is the
        prompt of both). Group matches (rewards/group_matches.py) call it once per round of judging."""
        def scorer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            a, b = a.tolist(), b.tolist()
            return self.pair_probabilities([prompts[i] for i in a], [responses[i] for i in a],
                                           [responses[j] for j in b]).p
        return scorer

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        raise TypeError(f"a {self.mode} reward model has no absolute score: it only compares two responses. "
                        "Use compare(prompt, response, anchor); ppo=standard with rm=generative uses the log-odds "
                        "of compare against the sft_greedy anchor.")

    # ---------------------------------------------------------------------------------------- files
    def spec(self) -> Dict[str, object]:
        return {"mode": self.mode, "max_prompt_tokens": self.max_prompt_tokens,
                "max_response_tokens": self.max_response_tokens}

    def save(self, directory: Path) -> None:
        save_pretrained(self.model, self.tokenizer, Path(directory))  # every rank (a sharded model gathers)
        atomic_write_text(Path(directory) / SPEC_FILE, json.dumps(self.spec(), indent=2) + "\n")  # rank 0

    @classmethod
    def config_spec(cls, cfg) -> Dict[str, object]:
        """The constructor settings this mode takes from the composed config (cfg.rm, cfg.data)."""
        return {"max_prompt_tokens": cfg.data.max_prompt_tokens, "max_response_tokens": cfg.data.max_response_tokens}

    @classmethod
    @abc.abstractmethod
    def from_pretrained(cls, directory: str, **spec) -> "RewardModel":
        """Load a saved RM (or, when training starts, an SFT policy directory) with the given spec."""


RM_MODES: Registry[Type[RewardModel]] = Registry("reward model mode")


def load_reward_model(directory: str | Path, dtype: str = "float32") -> RewardModel:
    """Load a trained RM saved by `RewardModel.save` (mode and settings come from its reward_model.json)."""
    spec = json.loads((Path(directory) / SPEC_FILE).read_text())
    mode = spec.pop("mode")
    return RM_MODES.get(mode).from_pretrained(str(directory), dtype=dtype, **spec)
