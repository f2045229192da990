"""Sampling responses with HF `generate` (KV cache on) and turning them into text and masks."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, List, Sequence

import torch
from omegaconf import DictConfig
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from pairwise_rl import distributed
from pairwise_rl.data.encoding import encode_prompts
from pairwise_rl.models.sharding import is_sharded
from pairwise_rl.precision import autocast_active


@dataclass
class Generations:
    prompt_ids: torch.Tensor       # (B, P) left-padded
    prompt_mask: torch.Tensor      # (B, P)
    response_ids: torch.Tensor     # (B, R) right-padded with pad after eos
    response_mask: torch.Tensor    # (B, R) 1 on generated tokens up to and including eos
    texts: List[str]               # decoded responses, eos and padding removed
    logprobs: torch.Tensor | None = None  # (B, R) log p(token) under the model's own (untempered) distribution;
    #                                       0 on padding. Only when generate(..., return_logprobs=True).


class ChosenTokenLogprobs(LogitsProcessor):
    """Records log p(chosen token) under the model's raw next-token distribution while HF samples.

    HF applies user processors after its own logit processors and before the sampling warpers (temperature,
    top-k, top-p), so `scores` here are the model's logits. The token chosen from step t's scores is the last
    column of step t+1's input_ids, so only one (B, V) log-softmax is held at a time: O(B·V) memory instead of
    the O(B·R·V) of `output_logits=True`, which matters at a 150k vocabulary.
    """

    def __init__(self) -> None:
        self.previous: torch.Tensor | None = None
        self.columns: List[torch.Tensor] = []

    def _take(self, chosen: torch.Tensor) -> None:
        if self.previous is not None:
            self.columns.append(self.previous.gather(-1, chosen[:, None]).squeeze(-1))
            self.previous = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._take(input_ids[:, -1])
        self.previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, new tokens): the last sampled token is read from the final generated column."""
        self._take(sequences[:, -1])
        if not self.columns:
            return torch.zeros(sequences.shape[0], 0, device=sequences.device)
        return torch.stack(self.columns, dim=1)


def response_mask_from_ids(response_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 up to and including the first eos; everything after the first eos is padding."""
    is_eos = (response_ids == eos_id).long()
    eos_seen_before = is_eos.cumsum(-1) - is_eos
    return (eos_seen_before == 0).long()


# Architectures whose static (preallocated) KV cache samples the same tokens as the growing one (checked in
# tests/models/test_generation.py): writing each step in place instead of concatenating the cache made sampling
# 512 digits prompts 10-17% faster here (0.71-0.73 s against 0.78-0.88 s), where the concatenation was 20% of it.
STATIC_CACHE_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral"})


def uses_static_cache(model: PreTrainedModel) -> bool:
    """Static cache where the architecture has one and the model runs unsharded (a sharded model gathers its
    weights per forward; keep the default path there), computing in its weights' dtype: the cache's buffers take
    that dtype, so fp32 weights under bf16 autocast (whose keys and values come out bf16) take the growing cache."""
    device_type = next(model.parameters()).device.type
    computes_in = autocast_active(device_type) or model.dtype
    return (getattr(model.config, "model_type", None) in STATIC_CACHE_TYPES and not is_sharded(model)
            and computes_in == model.dtype)


@contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """HF generate samples from the global RNG; fork it so a seeded generation is reproducible and leaves no trace."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], *,
             max_new_tokens: int, max_prompt_tokens: int, greedy: bool = False, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, generator_seed: int | None = None,
             return_logprobs: bool = False) -> Generations:
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in encode_prompts(tokenizer, prompts, max_prompt_tokens).items()}
    # Every sampling knob explicit. Which unset knobs HF fills from a checkpoint's generation_config.json (the
    # instruct models ship top_k 20 and repetition_penalty 1.05-1.1 there) has changed between versions, and
    # any of them would sample from another distribution than the one PPO's logprobs describe.
    sampling = dict(repetition_penalty=1.0)
    if not greedy:
        sampling.update(temperature=temperature, top_k=top_k, top_p=top_p)
    recorder = ChosenTokenLogprobs() if return_logprobs else None
    was_training = model.training
    model.eval()
    # A sharded model gathers its weights in every forward, a collective: a rank whose rows all ended must keep
    # stepping until every rank's have (synced_gpus), or the others wait for it forever.
    synced = is_sharded(model) and distributed.is_distributed()
    cache = {"cache_implementation": "static"} if uses_static_cache(model) else {}
    # transformers sizes a static cache to the longest length any earlier generate call on this model needed (it
    # keeps that on the model, to spare torch.compile a recompile); attention over a longer masked cache rounds
    # differently, so a call's numbers would depend on the process's history. A resumed run, whose history is
    # shorter, then drifted from an uninterrupted one (KL to SFT 1e-6 apart): every call sizes its own cache.
    model.__dict__.pop("_previous_max_cache_length", None)
    with _seeded(generator_seed, device):
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=not greedy, **sampling,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, use_cache=True,
                             synced_gpus=synced, logits_processor=LogitsProcessorList([recorder] if recorder else []),
                             **cache)
    model.train(was_training)
    response_ids = out[:, batch["input_ids"].shape[1]:]
    mask = response_mask_from_ids(response_ids, tokenizer.eos_token_id)
    response_ids = response_ids.masked_fill(mask == 0, tokenizer.pad_token_id)
    texts = decode_responses(tokenizer, response_ids, mask)
    logprobs = None if recorder is None else recorder.finish(out).masked_fill(mask == 0, 0.0)
    return Generations(batch["input_ids"], batch["attention_mask"], response_ids, mask, texts, logprobs)


def decode_responses(tokenizer: PreTrainedTokenizerBase, response_ids: torch.Tensor,
                     response_mask: torch.Tensor) -> List[str]:
    """Response texts without eos and padding: one batched decode (10x faster than a decode per row)."""
    kept = response_ids.masked_fill(response_mask == 0, tokenizer.pad_token_id)
    return tokenizer.batch_decode(kept, skip_special_tokens=True)


# --------------------------------------------------------------- seeded sampling: evaluation and pair collection
EVAL_SEED = 1234  # sampling in evaluation is seeded apart from training, so every stage is judged alike


def eval_chunks(items: Sequence, batch_size: int):
    """(seed, chunk) pairs: every evaluator samples the same rows with the same seeds, so they agree exactly."""
    for start in range(0, len(items), batch_size):
        yield EVAL_SEED + start, list(items[start:start + batch_size])


def policy_samples(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                   generation: DictConfig, max_prompt_tokens: int, greedy: bool, batch_size: int = 512,
                   seed: int = EVAL_SEED) -> List[str]:
    """Sampled (or greedy) responses to `prompts` in fixed-seed chunks: the same rows get the same samples whoever
    asks (a stage's evaluation, the pairs a policy's samples are collected into)."""
    responses: List[str] = []
    for chunk_seed, chunk in eval_chunks(prompts, batch_size):
        out = generate(model, tokenizer, chunk, max_new_tokens=generation.max_new_tokens,
                       max_prompt_tokens=max_prompt_tokens, greedy=greedy, temperature=generation.temperature,
                       top_k=generation.top_k, top_p=generation.top_p,
                       generator_seed=chunk_seed - EVAL_SEED + seed)
        responses.extend(out.texts)
    return responses
