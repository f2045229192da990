"""Reading a model at chosen positions without computing full-vocabulary logits everywhere.

Inputs are LEFT-padded, so the last column is every row's final real token: the verdict position of a judge
input, the pooling position of a BT score. Position ids come from the attention mask, so left padding does not
shift absolute-position models (GPT-2).
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import PreTrainedModel

from pairwise_rl.data.encoding import IGNORE_INDEX, position_ids_from_mask
from pairwise_rl.models import packing
from pairwise_rl.models.sharding import is_sharded


def hidden_states(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Final-layer hidden states (B, T, H) of the backbone (no LM head, no score head), zeros at padding when the
    batch ran packed (models/packing.py: on by default, `trainer.packing`)."""
    packed = packing.plan_for(model, input_ids, attention_mask)
    if packed is None:
        return _forward_hidden(model, dict(input_ids=input_ids, attention_mask=attention_mask,
                                           position_ids=position_ids_from_mask(attention_mask), use_cache=False))
    mask = packed.model_mask(model.config._attn_implementation, model.get_input_embeddings().weight.dtype)
    return packed.unpack(_forward_hidden(model, dict(input_ids=packed.input_ids, attention_mask=mask,
                                                     position_ids=packed.position_ids, use_cache=False)))


def _forward_hidden(model: PreTrainedModel, inputs: dict) -> torch.Tensor:
    if is_sharded(model):
        # FSDP2 gathers the root's own weights (embeddings, final norm, LM / score head) in the root forward and
        # reduces their gradients after backward; calling the backbone directly would skip both. The root stays
        # unsharded after its forward, so the head functions below can read it. Logits: the last position only.
        lm = {"logits_to_keep": 1} if model.get_output_embeddings() is not None else {}
        return model(**inputs, output_hidden_states=True, **lm).hidden_states[-1]
    return model.base_model(**inputs).last_hidden_state


def last_hidden(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return hidden_states(model, input_ids, attention_mask)[:, -1]


def causal_lm_loss(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled positions (labels[t] is predicted at t-1; IGNORE_INDEX
    elsewhere), as transformers' own causal-LM loss, with the LM head applied only where a label is."""
    targets = labels[:, 1:]
    labelled = targets != IGNORE_INDEX
    hidden = hidden_states(model, input_ids, attention_mask)[:, :-1][labelled]
    return torch.nn.functional.cross_entropy(lm_head_logits(model, hidden).float(), targets[labelled])


def lm_head_logits(model: PreTrainedModel, hidden: torch.Tensor, token_ids: Sequence[int] | None = None) -> torch.Tensor:
    """LM-head logits for `hidden` (..., H): all tokens, or only `token_ids` (a slice of the output embedding).

    A slice is a readout of a few tokens (a judge's verdict), so it is computed in fp32 with autocast off whatever
    the model's dtype: free for a few rows, and in bf16 logits of 16-32 round to steps of 0.125, about the whole
    reward spread of a weak judge (benchmarks/bench_verdict_precision.py)."""
    head = model.get_output_embeddings()
    if token_ids is None:
        return head(hidden)
    index = torch.as_tensor(list(token_ids), device=hidden.device)
    with torch.autocast(hidden.device.type, enabled=False):
        logits = hidden.float() @ head.weight[index].float().T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[index].float()
    return logits


def scalar_head(model: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    """The 1-output `score` head of an AutoModelForSequenceClassification, applied to (..., H) -> (...)."""
    return model.score(hidden).squeeze(-1)
