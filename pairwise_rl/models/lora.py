"""Optional LoRA adapters (model.lora.enabled=true) through peft, on any trainable model of any stage.

The adapters are injected into the model in place (`peft.inject_adapter_in_model`), so the model keeps its HF
class: the heads, FSDP2 sharding per block and generation work unchanged. Only the adapters train (and a
scalar model's fresh `score` head, which has nothing to adapt from). Every export merges the adapters into the
weights, W + (alpha / r) B A, so the next stage -- and anyone else -- loads a plain HF model directory.
"""

from __future__ import annotations

import copy
from typing import Dict

import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel

from pairwise_rl.models.contiguous import contiguous_head_input

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


def base_name(name: str) -> str:
    """A parameter's name in the plain model: 'q_proj.base_layer.weight' -> 'q_proj.weight'."""
    return name.replace(".base_layer.", ".")


def meta_twin(model: PreTrainedModel) -> PreTrainedModel:
    """An uninitialised plain model of the same class and config (no LoRA layers), on the meta device."""
    with torch.device("meta"):
        return contiguous_head_input(type(model)(copy.deepcopy(model.config)))


def adapter_free_view(model: PreTrainedModel) -> PreTrainedModel:
    """The model with its LoRA adapters left out, sharing every base weight with it (nothing is copied).

    PPO's reference under LoRA is exactly this: the SFT weights are the policy's frozen base, so one set of base
    weights serves both (tests/models/test_lora.py checks the storage is shared and the logits equal a separately
    loaded SFT model's). The base must stay frozen, which apply_lora guarantees.
    """
    if not has_lora(model):
        raise ValueError("adapter_free_view needs a model with LoRA adapters (apply_lora)")
    twin = meta_twin(model)
    owned = {base_name(name): param for name, param in model.named_parameters(remove_duplicate=False)
             if ".lora_" not in name}
    for name, _ in list(twin.named_parameters(remove_duplicate=False)):
        if owned[name].requires_grad:
            raise ValueError(f"{name} trains in the LoRA model; a view sharing it would not be the frozen base")
        module, leaf = name.rsplit(".", 1)
        twin.get_submodule(module)._parameters[leaf] = owned[name]
    owned_buffers = {base_name(name): buffer for name, buffer in model.named_buffers()}
    for name, _ in list(twin.named_buffers()):
        module, leaf = name.rsplit(".", 1)
        twin.get_submodule(module)._buffers[leaf] = owned_buffers[name]
    return twin.eval()
