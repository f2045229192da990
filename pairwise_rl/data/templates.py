"""The generative judge's input: a template with {prompt}, {a} and {b} slots, and its verdict tokens."""

from __future__ import annotations

from typing import List, Sequence, Tuple

from transformers import PreTrainedTokenizerBase

from pairwise_rl.data.records import Preference

A_WINS, B_WINS = 0, 1


def render(template: str, prompt: str, a: str, b: str) -> str:
    """Fill the slots by plain replacement, so a template may contain other braces (JSON, code) safely."""
    return template.replace("{prompt}", prompt).replace("{a}", a).replace("{b}", b)


def verdict_token_ids(tokenizer: PreTrainedTokenizerBase, tokens: Sequence[str]) -> Tuple[int, int]:
    ids = []
    for token in tokens:
        encoded = tokenizer(token, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1:
            raise ValueError(f"rm.verdict_tokens: {token!r} is {len(encoded)} tokens for this tokenizer; "
                             "each verdict must be exactly one token (try a leading space, e.g. ' A')")
        ids.append(encoded[0])
    return ids[0], ids[1]


def swap_augment(pairs: Sequence[Preference]) -> List[Tuple[str, str, str, int]]:
    """Each pair in both orders: (prompt, a, b, verdict) with the chosen response once as A and once as B."""
    out = []
    for pair in pairs:
        out.append((pair.prompt, pair.chosen, pair.rejected, A_WINS))
        out.append((pair.prompt, pair.rejected, pair.chosen, B_WINS))
    return out


def single_order(pairs: Sequence[Preference]) -> List[Tuple[str, str, str, int]]:
    """Chosen always as A: what training without swap augmentation sees (and why it learns a position bias)."""
    return [(pair.prompt, pair.chosen, pair.rejected, A_WINS) for pair in pairs]
