"""The generative pairwise reward model (Pairwise-RL): the LM itself judges "prompt, A, B" with a verdict token.

Only the verdict position is read: the backbone's last hidden state times the LM-head rows of the two verdict
tokens (for P(A wins)) or of the whole vocabulary at that single position (for the next-token training loss).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
from omegaconf import DictConfig

from pairwise_rl.algos.preference import ORDER_AVERAGES, verdict_loss, verdict_probability
from pairwise_rl.data.encoding import left_pad, truncate_texts
from pairwise_rl.data.records import Preference
from pairwise_rl.checks import check, one_of
from pairwise_rl.data.templates import (VERDICT_FORMATS, render, single_order, swap_augment,
                                       verdict_ids_by_verdict)
from pairwise_rl.models.chat import prompt_token_ids
from pairwise_rl.models.factory import load_causal_lm, load_tokenizer
from pairwise_rl.models.heads import last_hidden, lm_head_logits
from pairwise_rl.rewards.base import RM_MODES, PairProbabilities, RewardModel


@RM_MODES.register("generative")
class GenerativeReward(RewardModel):
    mode = "generative"

    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        tokens = cfg.rm.verdict_tokens
        check(len(tokens) == 2 and tokens[0] != tokens[1], "rm.verdict_tokens",
              "must be two different tokens (for 'A wins' and 'B wins')")
        for slot in ("{prompt}", "{a}", "{b}"):
            check(slot in cfg.rm.template, "rm.template", f"must contain the slot {slot}")
        one_of(cfg, "rm.verdict_format", VERDICT_FORMATS.names())

    def __init__(self, *args, template: str, verdict_tokens: Sequence[str], swap_augment: bool = True,
                 verdict_format: str = "ab", **kwargs):
        super().__init__(*args, **kwargs)
        self.template, self.verdict_tokens = template, list(verdict_tokens)
        self.swap_augment, self.verdict_format = swap_augment, verdict_format
        self.both_orders = True  # a runtime choice of the caller (ppo.both_orders), not a property of the model
        self.order_average = "probability"  # how both orders combine: also the caller's (ppo.order_average)
        # verdict_ids[A_WINS] / [B_WINS]: everything below reads verdicts, never the format's token order.
        self.verdict_ids = verdict_ids_by_verdict(self.tokenizer, self.verdict_tokens, verdict_format)

    def _encode(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> Dict[str, torch.Tensor]:
        # Batched tokenizer calls (3 to cut the pieces, 1 for the judge inputs): per-row calls cost more than the
        # forward pass of the tiny judge (benchmarks/bench_scoring.py).
        prompts = truncate_texts(self.tokenizer, prompts, self.max_prompt_tokens, "end")
        a = truncate_texts(self.tokenizer, a, self.max_response_tokens, "start")
        b = truncate_texts(self.tokenizer, b, self.max_response_tokens, "start")
        texts = [render(self.template, p, x, y) for p, x, y in zip(prompts, a, b)]
        # The template budget is generous: the pieces were already cut to their own limits.
        limit = self.max_prompt_tokens + 2 * self.max_response_tokens + len(self.template) + 8
        ids, mask = left_pad([row[-limit:] for row in prompt_token_ids(self.tokenizer, texts)],
                             self.tokenizer.pad_token_id)
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}

    def _verdict_hidden(self, prompts, a, b) -> torch.Tensor:
        batch = self._encode(prompts, a, b)
        return last_hidden(self.model, batch["input_ids"], batch["attention_mask"])

    def _verdict_margin(self, prompts, a, b) -> torch.Tensor:
        """l_A - l_B at the verdict position: the log-odds that A wins (the two logits are an fp32 readout)."""
        self.rows_judged += len(prompts)
        logits = lm_head_logits(self.model, self._verdict_hidden(prompts, a, b), self.verdict_ids)
        return logits[:, 0] - logits[:, 1]

    def _p_a_wins(self, prompts, a, b) -> torch.Tensor:
        return torch.sigmoid(self._verdict_margin(prompts, a, b))

    def training_loss(self, pairs: Sequence[Preference]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        rows: List[Tuple[str, str, str, int]] = swap_augment(pairs) if self.swap_augment else single_order(pairs)
        prompts, a, b, verdicts = zip(*rows)
        hidden = self._verdict_hidden(prompts, a, b)
        logits = lm_head_logits(self.model, hidden)  # full vocabulary, but only at the verdict position
        targets = torch.tensor([self.verdict_ids[v] for v in verdicts], device=logits.device)
        soft = [p.label for p in pairs for _ in range(len(rows) // len(pairs))]  # rows are pairs x orders, in order
        if all(q is None for q in soft):
            loss = verdict_loss(logits, targets)
        else:
            others = torch.tensor([self.verdict_ids[1 - v] for v in verdicts], device=logits.device)
            loss = verdict_loss(logits, targets, others, torch.tensor([1.0 if q is None else q for q in soft]))
        p_a = verdict_probability(logits[:, self.verdict_ids[0]], logits[:, self.verdict_ids[1]])
        correct = torch.where(torch.tensor(verdicts, device=p_a.device) == 0, p_a > 0.5, p_a < 0.5)
        verdict_mass = logits.float().softmax(-1)[:, list(self.verdict_ids)].sum(-1)
        return loss, {"accuracy": correct.float().mean().detach(), "verdict_mass": verdict_mass.mean().detach()}

    @property
    def order_sensitive(self) -> bool:
        return not self.both_orders

    def _pair_probabilities(self, prompts, y1, y2) -> PairProbabilities:
        if not self.both_orders:
            p_first = self._p_a_wins(list(prompts), list(y1), list(y2))
            return PairProbabilities(p_first, p_first, None)
        # Both orders in one forward pass: rows [y1 as A] then [y2 as A].
        prompts = list(prompts)
        margin = self._verdict_margin(prompts + prompts, list(y1) + list(y2), list(y2) + list(y1))
        m_first, m_second = margin.chunk(2)
        return PairProbabilities(ORDER_AVERAGES.get(self.order_average)(m_first, m_second), torch.sigmoid(m_first),
                                 torch.sigmoid(m_second))

    def spec(self):
        return {**super().spec(), "template": self.template, "verdict_tokens": self.verdict_tokens,
                "swap_augment": self.swap_augment, "verdict_format": self.verdict_format}

    @classmethod
    def config_spec(cls, cfg):
        return {**super().config_spec(cfg), "template": cfg.rm.template, "verdict_tokens": list(cfg.rm.verdict_tokens),
                "swap_augment": cfg.rm.swap_augment, "verdict_format": cfg.rm.verdict_format}

    @classmethod
    def from_pretrained(cls, directory: str, dtype: str = "float32", **spec) -> "GenerativeReward":
        return cls(load_causal_lm(directory, dtype), load_tokenizer(directory), **spec)
