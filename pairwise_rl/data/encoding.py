"""Turning text records into padded token tensors.

Conventions used everywhere: prompts are LEFT-padded (generation continues all rows at one position), responses
are RIGHT-padded and end with eos. Position ids are always derived from the attention mask, so padding never
shifts a model's view of a sequence. Prompts are read through the model's chat template when it has one
configured (models/chat.py).
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from pairwise_rl.models.chat import prompt_token_ids

IGNORE_INDEX = -100


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, max_tokens: int) -> List[int]:
    (ids,) = prompt_token_ids(tokenizer, [prompt])
    # Over-long prompts keep their end: the instruction's tail ("... =") is what the response continues.
    return ids[-max_tokens:]


def encode_response(tokenizer: PreTrainedTokenizerBase, response: str, max_tokens: int) -> List[int]:
    ids = tokenizer(response, add_special_tokens=False)["input_ids"][: max_tokens - 1]
    return ids + [tokenizer.eos_token_id]


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
    return ids, mask


def right_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over the real tokens of each row; padding positions get 0 (they are masked anyway)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_tokens: int) -> Dict[str, torch.Tensor]:
    # One batched tokenizer call (the per-prompt calls cost ~7% of a rollout, measured by benchmarks/bench_rollout.py).
    rows = prompt_token_ids(tokenizer, prompts)
    ids, mask = left_pad([row[-max_tokens:] for row in rows], tokenizer.pad_token_id)
    return {"input_ids": ids, "attention_mask": mask}


def encode_sft_batch(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], responses: Sequence[str],
                     max_prompt_tokens: int, max_response_tokens: int) -> Dict[str, torch.Tensor]:
    """Prompt+response rows, right-padded; labels are IGNORE_INDEX on prompt and padding (loss on the response)."""
    rows, label_rows = [], []
    for prompt, response in zip(prompts, responses):
        p = encode_prompt(tokenizer, prompt, max_prompt_tokens)
        r = encode_response(tokenizer, response, max_response_tokens)
        rows.append(p + r)
        label_rows.append([IGNORE_INDEX] * len(p) + r)
    ids, mask = right_pad(rows, tokenizer.pad_token_id)
    labels, _ = right_pad(label_rows, IGNORE_INDEX)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def truncate_text(tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int, keep: str) -> str:
    """Cut text to at most max_tokens tokens, keeping its 'start' (responses) or 'end' (prompts)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text
    kept = ids[:max_tokens] if keep == "start" else ids[-max_tokens:]
    return tokenizer.decode(kept, skip_special_tokens=False)


def encode_scored_sequences(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], responses: Sequence[str],
                            max_prompt_tokens: int, max_response_tokens: int) -> Dict[str, torch.Tensor]:
    """prompt + response + eos per row, LEFT-padded: the last column is each row's eos (the BT pooling point).

    The same ids as encode_prompt + encode_response per row, from two batched tokenizer calls: per-row calls were
    the BT training step's largest overhead (benchmarks/bench_rm_training.py)."""
    prompt_rows = prompt_token_ids(tokenizer, prompts)
    response_rows = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    rows = [p[-max_prompt_tokens:] + r[: max_response_tokens - 1] + [tokenizer.eos_token_id]
            for p, r in zip(prompt_rows, response_rows)]
    ids, mask = left_pad(rows, tokenizer.pad_token_id)
    return {"input_ids": ids, "attention_mask": mask}


def truncate_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_tokens: int, keep: str) -> List[str]:
    """truncate_text over a batch: one tokenizer call, and a decode only for the texts that are too long."""
    rows = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [text if len(ids) <= max_tokens else
            tokenizer.decode(ids[:max_tokens] if keep == "start" else ids[-max_tokens:], skip_special_tokens=False)
            for text, ids in zip(texts, rows)]
