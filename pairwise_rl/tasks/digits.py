"""The embedded "digits" task: prompts, their targets and the gold judge (contract in DESIGN.md).

    sort: 4 9 1 7 =      ->  " 1 4 7 9"
    reverse: 4 9 1 7 =   ->  " 7 1 9 4"
    add: 352 + 71 =      ->  " 423"

Gold score g(prompt, response) in [0, 1]: split response and target into items (space-separated digits for the
list kinds, the characters of the decimal sum for `add`, aligned from the right) and count matching positions,
divided by the longer of the two item lists. Empty or unparsable responses score 0.

Train / val / test prompts never overlap because a prompt's split is a pure function of its text (a stable hash),
whatever seed or sample size produced it.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Iterable, List, Sequence, Tuple

from pairwise_rl.checks import ConfigError

KINDS = ("sort", "reverse", "add")
SPLITS = {"train": (0, 80), "val": (80, 90), "test": (90, 100)}  # ranges of a 0..99 hash bucket


@dataclass(frozen=True)
class DigitsProblem:
    kind: str
    operands: Tuple[int, ...]  # the digit list, or the two addends

    @property
    def prompt(self) -> str:
        if self.kind == "add":
            return f"add: {self.operands[0]} + {self.operands[1]} ="
        return f"{self.kind}: {' '.join(map(str, self.operands))} ="

    @property
    def target(self) -> str:
        """The correct response, with the leading space that separates it from the prompt's '='."""
        if self.kind == "sort":
            return " " + " ".join(map(str, sorted(self.operands)))
        if self.kind == "reverse":
            return " " + " ".join(map(str, reversed(self.operands)))
        return f" {self.operands[0] + self.operands[1]}"


def parse_prompt(prompt: str) -> DigitsProblem:
    """Inverse of DigitsProblem.prompt; raises ValueError for text that is not a digits prompt."""
    head, sep, rest = prompt.strip().partition(":")
    if not sep or head not in KINDS or not rest.rstrip().endswith("="):
        raise ValueError(f"not a digits prompt: {prompt!r}")
    body = rest.rstrip()[:-1].split()
    try:
        if head == "add":
            if len(body) != 3 or body[1] != "+":
                raise ValueError
            return DigitsProblem("add", (int(body[0]), int(body[2])))
        return DigitsProblem(head, tuple(int(x) for x in body))
    except ValueError:
        raise ValueError(f"not a digits prompt: {prompt!r}") from None


def _items(kind: str, text: str) -> List[str] | None:
    """Split a response into comparable items, or None when it cannot be parsed for this kind."""
    if kind == "add":
        stripped = text.strip()
        return list(stripped) if stripped.isdigit() and stripped.isascii() else None
    items = text.split()
    if not items or not all(len(item) == 1 and item in "0123456789" for item in items):
        return None
    return items


def gold_score_items(kind: str, response: str, target: str) -> float:
    got, want = _items(kind, response), _items(kind, target)
    if not got or not want:
        return 0.0
    if kind == "add":  # numbers align on their last digit
        got, want = got[::-1], want[::-1]
    matches = sum(a == b for a, b in zip(got, want))
    return matches / max(len(got), len(want))


def gold_score(prompt: str, response: str) -> float:
    problem = parse_prompt(prompt)
    return gold_score_items(problem.kind, response, problem.target)


def split_of(prompt: str) -> str:
    bucket = int.from_bytes(hashlib.blake2b(prompt.encode(), digest_size=8).digest(), "big") % 100
    for name, (low, high) in SPLITS.items():
        if low <= bucket < high:
            return name
    raise AssertionError("SPLITS must cover 0..99")


def random_problem(kind: str, rng: random.Random, min_items: int = 3, max_items: int = 8,
                   max_addend: int = 999) -> DigitsProblem:
    if kind == "add":
        return DigitsProblem("add", (rng.randint(0, max_addend), rng.randint(0, max_addend)))
    if kind not in KINDS:
        raise ValueError(f"unknown digits kind {kind!r}; choose from {KINDS}")
    length = rng.randint(min_items, max_items)
    return DigitsProblem(kind, tuple(rng.randint(0, 9) for _ in range(length)))


def sample_problems(split: str, n: int, seed: int, kinds: Sequence[str] = KINDS, min_items: int = 3,
                    max_items: int = 8, max_addend: int = 999) -> List[DigitsProblem]:
    """n distinct problems of one split, kinds in round-robin so every kind is equally represented."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {list(SPLITS)}")
    # The split name enters the seed so the same seed gives unrelated streams per split.
    rng = random.Random(f"digits/{split}/{seed}")
    seen: set[str] = set()
    problems: List[DigitsProblem] = []
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise ConfigError(f"data.digits: could not draw {n} distinct {split} prompts of kinds {list(kinds)} with "
                              f"{min_items}-{max_items} items (addends up to {max_addend}): the problem space is too "
                              "small; lower data.digits.num_train_prompts / num_val_prompts (or eval.num_prompts), "
                              "or widen data.digits.min_items / max_items / max_addend")
        kind = kinds[len(problems) % len(kinds)]
        problem = random_problem(kind, rng, min_items, max_items, max_addend)
        text = problem.prompt
        if text in seen or split_of(text) != split:
            continue
        seen.add(text)
        problems.append(problem)
    return problems


def kind_of(prompt: str) -> str:
    return parse_prompt(prompt).kind


def mean_by_kind(prompts: Iterable[str], scores: Iterable[float]) -> dict[str, float]:
    """Mean score per prompt kind plus 'all'; the per-kind view shows where RLHF helps."""
    totals: dict[str, list[float]] = {}
    for prompt, score in zip(prompts, scores):
        totals.setdefault(kind_of(prompt), []).append(float(score))
        totals.setdefault("all", []).append(float(score))
    return {kind: sum(values) / len(values) for kind, values in totals.items()}
