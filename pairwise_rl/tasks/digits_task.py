"""The embedded digits task behind the task interface: generated prompts, imperfect demonstrations, a gold judge
and a noisy annotator whose pairs are collected from the SFT policy (stages/pairs.py)."""

from __future__ import annotations

import random
from typing import Callable, Dict, List, Optional, Sequence

from omegaconf import DictConfig

from pairwise_rl.checks import check, fraction, positive
from pairwise_rl.data.records import Preference, Prompt
from pairwise_rl.tasks.base import TASKS, GoldJudge, Task
from pairwise_rl.tasks.demonstrations import demonstrations
from pairwise_rl.tasks.digits import KINDS, gold_score, kind_of, sample_problems
from pairwise_rl.tasks.oracle import label_pair, preference_probability

HELD_OUT_SEED = 0  # val/test prompts do not depend on the run seed: every seed is judged on the same prompts


class DigitsGold(GoldJudge):
    def __init__(self, taus: Dict[str, float]):
        self.taus = dict(taus)

    def score(self, prompt: str, response: str) -> float:
        return gold_score(prompt, response)

    def pair_probability(self, prompt: str, y1: str, y2: str) -> float:
        return preference_probability(gold_score(prompt, y1), gold_score(prompt, y2), self.taus[kind_of(prompt)])


@TASKS.register("digits")
class DigitsTask(Task):
    name = "digits"

    def __init__(self, cfg: DictConfig):
        self.cfg, self.digits = cfg, cfg.data.digits
        self.gold = DigitsGold(dict(self.digits.tau))

    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        digits = cfg.data.digits
        check(len(digits.kinds) > 0, "data.digits.kinds", "must name at least one kind")
        for kind in digits.kinds:
            check(kind in KINDS, "data.digits.kinds", f"unknown kind {kind!r}; choose from {list(KINDS)}")
            check(kind in digits.tau, "data.digits.tau", f"no tau for kind {kind!r}")
        for kind, tau in digits.tau.items():
            check(tau > 0, f"data.digits.tau.{kind}", f"must be > 0, got {tau}")
        check(1 <= digits.min_items <= digits.max_items, "data.digits.min_items",
              f"must satisfy 1 <= min_items <= max_items, got {digits.min_items}, {digits.max_items}")
        fraction(cfg, "data.digits.corruption_rate")
        positive(cfg, "data.digits.num_train_prompts", "data.digits.num_val_prompts")

    def prompt_records(self, split: str, n: int) -> List[Prompt]:
        """n prompts of a split with their (imperfect) demonstration as reference."""
        d = self.digits
        seed = self.cfg.seed if split == "train" else HELD_OUT_SEED
        problems = sample_problems(split, n, seed, d.kinds, d.min_items, d.max_items, d.max_addend)
        return demonstrations(problems, d.corruption_rate, seed if split == "train" else 10_000 + len(split))

    def sft_demos(self) -> List[Prompt]:
        return self.prompt_records("train", self.digits.num_train_prompts)

    def rl_prompts(self) -> List[Prompt]:
        return self.prompt_records("train", self.digits.num_train_prompts)

    def val_prompts(self) -> List[Prompt]:
        return self.prompt_records("val", self.digits.num_val_prompts)

    def eval_prompts(self) -> List[Prompt]:
        return self.prompt_records("test", self.cfg.eval.num_prompts)

    def label_pair(self) -> Callable[[str, str, str, random.Random], Preference]:
        taus = dict(self.digits.tau)
        return lambda prompt, y1, y2, rng: label_pair(prompt, y1, y2, taus, rng)

    def collection_prompts(self, split: str, n: int) -> List[str]:
        return [record.prompt for record in self.prompt_records(split, n)]

    @property
    def groups(self) -> Sequence[str]:
        return tuple(self.digits.kinds)

    def group_of(self, prompt: str) -> Optional[str]:
        return kind_of(prompt)
