"""One matmul for the LM head, whatever slice of the hidden states it is given.

torch folds a (B, T, H) @ (H, V) product into a single mm only when the input's leading dimensions are contiguous or
the weight requires grad. Otherwise it runs bmm on the weight expanded B times: a B x H x V copy. HF slices the
last position before the LM head while sampling (logits_to_keep), PPO's heads slice the response positions, and
frozen weights (PPO's reference, a bf16 sampling copy, the base weights under LoRA) do not require grad. Measured on
SmolLM2 (vocabulary 49,152), 64 prompts of 96 tokens: a bf16 prefill took 9.6-10.8 s (the profiler put 7.3 s of
13.2 in copying the expanded head), and 5.1 s with its input made contiguous first (a 64 x 576 copy).
"""

from __future__ import annotations

import torch


def _contiguous_input(module: torch.nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:])


def contiguous_head_input(model: torch.nn.Module) -> torch.nn.Module:
    """Make the model's output embedding (LM head) read a contiguous input; a no-op without one, or done already."""
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if get_head is not None else None
    if head is not None and not getattr(head, "_pairwise_rl_contiguous_input", False):
        head.register_forward_pre_hook(_contiguous_input)
        head._pairwise_rl_contiguous_input = True
    return model
