"""Deliberately imperfect SFT demonstrations for the digits task.

A fraction `corruption_rate` of demonstrations gets one random edit (swap, substitute, drop or duplicate an item),
the kind of mistakes a careless human demonstrator makes. The SFT policy imitates them, which leaves room for
RLHF to raise the gold score -- the whole point of the comparison.
"""

from __future__ import annotations

import random
from typing import List

from pairwise_rl.data.records import Prompt
from pairwise_rl.tasks.digits import DigitsProblem

EDITS = ("swap", "substitute", "drop", "duplicate")


def corrupt_items(items: List[str], rng: random.Random) -> List[str]:
    """Apply one random edit that changes the item list (never a no-op)."""
    items = list(items)
    while True:
        edit = rng.choice(EDITS)
        i = rng.randrange(len(items))
        if edit == "swap" and len(items) >= 2:
            j = i + 1 if i + 1 < len(items) else i - 1
            if items[i] == items[j]:
                continue
            items[i], items[j] = items[j], items[i]
        elif edit == "substitute":
            items[i] = rng.choice([d for d in "0123456789" if d != items[i]])
        elif edit == "drop" and len(items) >= 2:
            del items[i]
        elif edit == "duplicate":
            items.insert(i, items[i])
        else:
            continue
        return items


def corrupt(problem: DigitsProblem, response: str, rng: random.Random) -> str:
    if problem.kind == "add":
        return " " + "".join(corrupt_items(list(response.strip()), rng))
    return " " + " ".join(corrupt_items(response.split(), rng))


def demonstration(problem: DigitsProblem, corruption_rate: float, rng: random.Random) -> str:
    target = problem.target
    return corrupt(problem, target, rng) if rng.random() < corruption_rate else target


def demonstrations(problems: List[DigitsProblem], corruption_rate: float, seed: int) -> List[Prompt]:
    """One fixed (seeded) demonstration per problem, as Prompt records whose reference is the demonstration."""
    rng = random.Random(f"demos/{seed}")
    return [Prompt(p.prompt, demonstration(p, corruption_rate, rng), task="digits") for p in problems]
