"""The one interface every task implements; stages and modules ask it for the role they need.

A task provides:
  * SFT demonstrations        (prompt + the response to imitate)
  * preference pairs          (train / val / test), or None when they are collected from the SFT policy
  * RL prompts                (the training split, each with an optional reference response: the `reference`
                               anchor, the paper's "ground-truth anchor")
  * validation and evaluation prompts (held out, fixed across seeds, split by a hash of the prompt)
  * optionally a gold judge, and the groups its tables break results into (digits: the prompt kind)

Digits is one task (tasks/digits_task.py); a preference dataset is another (tasks/preferences.py). No stage or
module reads a task's files or imports a task module: they call `load_task(cfg)` and use this interface.
"""

from __future__ import annotations

import abc
from typing import Callable, Dict, List, Optional, Sequence

from omegaconf import DictConfig

from pairwise_rl.data.records import Preference, Prompt
from pairwise_rl.registry import Registry

ALL = "all"


class GoldJudge(abc.ABC):
    """A task's ground truth: an exact score for any response (digits has one; human preference data does not)."""

    @abc.abstractmethod
    def score(self, prompt: str, response: str) -> float:
        """The gold score of one response, in [0, 1]."""

    def pair_probability(self, prompt: str, y1: str, y2: str) -> Optional[float]:
        """The annotator's P(y1 preferred over y2), where the task models its annotator (None otherwise)."""
        return None


class Task(abc.ABC):
    name: str = ""

    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        """Reject out-of-range values of the keys this task reads (config.validate calls the selected task's)."""
    gold: Optional[GoldJudge] = None

    # ------------------------------------------------------------------------------------------------ roles
    @abc.abstractmethod
    def sft_demos(self) -> List[Prompt]:
        """Training-split prompts with the response to imitate as `reference`."""

    @abc.abstractmethod
    def rl_prompts(self) -> List[Prompt]:
        """Training-split prompts for RL; `reference` is the reference response where the task has one."""

    @abc.abstractmethod
    def val_prompts(self) -> List[Prompt]:
        """Held-out prompts for in-training evaluation (the same for every seed)."""

    @abc.abstractmethod
    def eval_prompts(self) -> List[Prompt]:
        """Held-out test prompts for the final evaluation (the same for every seed)."""

    def preference_pairs(self) -> Optional[Dict[str, List[Preference]]]:
        """{train, val, test} pairs from the task's own data, or None when they are sampled from the SFT policy
        and labelled by the task's annotator (`label_pair`)."""
        return None

    def pair_metrics(self) -> Dict[str, float]:
        """Counts from reading the preference pairs (rows, kept, skipped and truncated by reason)."""
        return {}

    def label_pair(self) -> Optional[Callable]:
        """An annotator that labels two sampled responses, for tasks whose pairs are collected (digits)."""
        return None

    def collection_prompts(self, split: str, n: int) -> List[str]:
        """n prompts of a split to collect pairs on (tasks whose pairs are sampled from the policy)."""
        raise TypeError(f"the {self.name} task brings its own preference pairs; it collects none")

    # ------------------------------------------------------------------------------------------------ groups
    @property
    def groups(self) -> Sequence[str]:
        """The groups results are broken into besides 'all' (digits: its prompt kinds)."""
        return ()

    def group_of(self, prompt: str) -> Optional[str]:
        return None

    def by_group(self, prompts: Sequence[str], values: Sequence[float]) -> Dict[str, float]:
        """Mean value per group plus 'all'."""
        totals: Dict[str, List[float]] = {}
        for prompt, value in zip(prompts, values):
            group = self.group_of(prompt)
            if group is not None:
                totals.setdefault(group, []).append(float(value))
            totals.setdefault(ALL, []).append(float(value))
        return {name: sum(v) / len(v) for name, v in totals.items()}


TASKS: Registry[Callable[[DictConfig], Task]] = Registry("task")


def task_names() -> List[str]:
    return TASKS.names()


def load_task(cfg: DictConfig) -> Task:
    """The task `data.task` names, built from the composed config."""
    return TASKS.get(cfg.data.task)(cfg)


def prompts_of(records: Sequence[Prompt]) -> List[str]:
    return [record.prompt for record in records]


def first_per_prompt(pairs: Sequence[Preference]) -> List[Prompt]:
    """One Prompt per distinct prompt, in first-seen order, with the first chosen response as its reference."""
    seen: Dict[str, Prompt] = {}
    for pair in pairs:
        if pair.prompt not in seen:
            seen[pair.prompt] = Prompt(pair.prompt, pair.chosen, task=pair.task)
    return list(seen.values())
