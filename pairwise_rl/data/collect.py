"""Collecting preference data the way RLHF does: two samples of the current policy per prompt, labelled.

Pairs whose two samples are identical carry no preference and are not kept; they are counted, and prompts are
revisited (with fresh samples) until enough distinct pairs exist or `max_passes` is reached.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Callable, List, Sequence

from omegaconf import DictConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pairwise_rl.data.records import Preference
from pairwise_rl.models.generation import policy_samples

log = logging.getLogger(__name__)


@dataclass
class Collected:
    pairs: List[Preference]
    identical_skipped: int
    prompts_used: int


def collect_preferences(policy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                        num_pairs: int, generation: DictConfig, max_prompt_tokens: int, seed: int,
                        label: Callable[[str, str, str, random.Random], Preference], max_passes: int = 4,
                        chunk: int = 512) -> Collected:
    rng = random.Random(f"collect/{seed}")
    pairs: List[Preference] = []
    skipped = used = 0
    for sweep in range(max_passes):
        for start in range(0, len(prompts), chunk):
            batch = list(prompts[start:start + chunk])
            base = seed * 1_000_003 + sweep * 100_003 + start
            first = policy_samples(policy, tokenizer, batch, generation, max_prompt_tokens, greedy=False, seed=base)
            second = policy_samples(policy, tokenizer, batch, generation, max_prompt_tokens, greedy=False,
                                    seed=base + 50_000)
            for prompt, y1, y2 in zip(batch, first, second):
                used += 1
                if y1 == y2:
                    skipped += 1
                    continue
                pairs.append(label(prompt, y1, y2, rng))
                if len(pairs) == num_pairs:
                    return Collected(pairs, skipped, used)
    log.warning("collected only %d of %d distinct pairs (%d identical samples skipped)", len(pairs), num_pairs,
                skipped)
    return Collected(pairs, skipped, used)
