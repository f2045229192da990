"""The preference oracle ("annotator") of the digits task.

P(y1 preferred over y2) = sigmoid((g1 - g2) / tau_kind). A small tau is a reliable annotator, a large tau a noisy
one; tau differs per prompt kind, so how much a preference label is worth depends on the context -- exactly the
cross-prompt calibration problem a pairwise RM sidesteps.
"""

from __future__ import annotations

import math
import random
from typing import Mapping

from pairwise_rl.data.records import Preference
from pairwise_rl.tasks.digits import gold_score, kind_of


def preference_probability(g1: float, g2: float, tau: float) -> float:
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    z = (g1 - g2) / tau
    # Numerically stable logistic for large |z|.
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def label_pair(prompt: str, y1: str, y2: str, taus: Mapping[str, float], rng: random.Random) -> Preference:
    """Sample the annotator's label for (y1, y2) and return it as a Preference (chosen first)."""
    p = preference_probability(gold_score(prompt, y1), gold_score(prompt, y2), taus[kind_of(prompt)])
    if rng.random() < p:
        return Preference(prompt, y1, y2, task="digits", probability=p)
    return Preference(prompt, y2, y1, task="digits", probability=1.0 - p)
