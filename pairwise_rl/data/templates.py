"""The generative judge's input: a template with {prompt}, {a} and {b} slots, and its verdict tokens.

How the two verdict tokens encode a verdict is the judge's verdict format (rm.verdict_format, VERDICT_FORMATS):

    ab      the tokens name the winner: rm.verdict_tokens[0] means "A wins", [1] "B wins" (today's A / B)
    yes_no  one yes/no question about the second response ("is B better than A?"): rm.verdict_tokens = [yes, no],
            so P(yes | prompt, A, B) = P(B wins); with the anchor as A this is P(yes | prompt, anchor, response)

Either way P(A wins) is the softmax over the two verdict logits, and both orders are averaged when scoring, so the
formats differ in what the template asks and which token carries which verdict, not in the function class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from transformers import PreTrainedTokenizerBase

from pairwise_rl.checks import ConfigError
from pairwise_rl.data.records import Preference
from pairwise_rl.registry import Registry

A_WINS, B_WINS = 0, 1
SLOTS = re.compile(r"\{(prompt|a|b)\}")


def render(template: str, prompt: str, a: str, b: str) -> str:
    """Fill the slots in one pass over the template, so a template may contain other braces (JSON, code) and a
    response may contain the text of a slot (`{b}` in a code answer) without either being rewritten."""
    values = {"prompt": prompt, "a": a, "b": b}
    return SLOTS.sub(lambda slot: values[slot.group(1)], template)


@dataclass(frozen=True)
class VerdictFormat:
    token_of: Tuple[int, int]  # token_of[verdict] = index into rm.verdict_tokens of the token meaning A_WINS / B_WINS


VERDICT_FORMATS: Registry[VerdictFormat] = Registry("verdict format")
VERDICT_FORMATS.register("ab")(VerdictFormat(token_of=(0, 1)))
VERDICT_FORMATS.register("yes_no")(VerdictFormat(token_of=(1, 0)))  # "no" (the second is not better) = A wins


def verdict_ids_by_verdict(tokenizer: PreTrainedTokenizerBase, tokens: Sequence[str],
                           verdict_format: str) -> Tuple[int, int]:
    """(id of the token meaning A wins, id of the token meaning B wins) under the verdict format."""
    ids = verdict_token_ids(tokenizer, tokens)
    order = VERDICT_FORMATS.get(verdict_format).token_of
    return ids[order[A_WINS]], ids[order[B_WINS]]


def verdict_token_ids(tokenizer: PreTrainedTokenizerBase, tokens: Sequence[str]) -> Tuple[int, int]:
    ids = []
    for token in tokens:
        encoded = tokenizer(token, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1:
            raise ConfigError(f"rm.verdict_tokens: {token!r} is {len(encoded)} tokens for this tokenizer; "
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
