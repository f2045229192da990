"""Optional LoRA adapters (model.lora.enabled=true) through peft, on any trainable model of any stage.

The adapters are injected into the model in place (`peft.inject_adapter_in_model`), so the model keeps its HF
class: the heads, FSDP2 sharding per block and generation work unchanged. Only the adapters train (and a
scalar model's fresh `score` head, which has nothing to adapt from). Every export merges the adapters into the
weights, W + (alpha / r) B A, so the next stage -- and anyone else -- loads a plain HF model directory.
"""

from __future__ import annotations

from typing import Dict

import torch
from omegaconf import DictConfig

ADAPTER = "default"
TRAINABLE_HEADS = ("score",)  # a fresh scalar head (BT RM, critic) always trains in full


def apply_lora(model: torch.nn.Module, lora: DictConfig) -> torch.nn.Module:
    """Inject LoRA into lora.target_modules and freeze everything else (but a scalar head). A no-op unless
    lora.enabled."""
    if not lora.enabled:
        return model
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), bias="none")
    inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    for name, param in model.named_parameters():
        param.requires_grad_(".lora_" in name or name.split(".")[0] in TRAINABLE_HEADS)
    model._pairwise_rl_lora_scaling = lora.alpha / lora.r  # what an export merges with
    return model


def has_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "_pairwise_rl_lora_scaling")


def merge_lora_state(state: Dict[str, torch.Tensor], scaling: float) -> Dict[str, torch.Tensor]:
    """A LoRA model's state dict as the plain model's: each adapted layer's weight becomes W + scaling * B @ A
    and the adapter tensors go away. Pure: the input dict is not changed."""
    merged = dict(state)
    for key in [k for k in state if k.endswith(".base_layer.weight")]:
        prefix = key[: -len(".base_layer.weight")]
        down = merged.pop(f"{prefix}.lora_A.{ADAPTER}.weight")  # (r, in)
        up = merged.pop(f"{prefix}.lora_B.{ADAPTER}.weight")    # (out, r)
        weight = merged.pop(key)
        merged[f"{prefix}.weight"] = (weight.float() + scaling * (up.float() @ down.float())).to(weight.dtype)
        if f"{prefix}.base_layer.bias" in merged:
            merged[f"{prefix}.bias"] = merged.pop(f"{prefix}.base_layer.bias")
    return merged


def trainable_fraction(model: torch.nn.Module) -> float:
    """The share of parameters that train: 1.0 without LoRA, the adapters' (and head's) share with it."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad) / max(total, 1)
