"""FSDP2 for HF transformers: `fully_shard` each decoder block, then the root (embeddings, final norm, heads).

Sharding per block is what bounds memory: a block's full weights exist only while it computes (forward, and
again in backward), then are freed back to this rank's shard. Used by `trainer.strategy=fsdp` (Lightning's
ModelParallelStrategy calls the modules' `configure_model`) and directly by the equivalence tests.

`trainer.strategy=ddp` takes the same path on a (world, 1) mesh: FSDP2's hybrid mode with shard groups of one
rank, i.e. every rank holds the full weights and gradients are all-reduced -- data parallelism, with the same
code (and the same several-backwards-per-step PPO loop) as fsdp, which torch's DDP wrapper does not allow.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import List

import torch
from omegaconf import DictConfig
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, fully_shard
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pairwise_rl import distributed
from pairwise_rl.models.lora import has_lora, merge_lora_state


def transformer_blocks(model: torch.nn.Module) -> List[torch.nn.Module]:
    """The repeated blocks of an HF model, found by the class names it declares unsplittable."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if not blocks:
        raise ValueError(f"{type(model).__name__} declares no transformer block classes (_no_split_modules); "
                         "cannot shard it per block")
    return blocks


def is_sharded(model: torch.nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def shard_model(model: torch.nn.Module, mesh: DeviceMesh, *, activation_checkpointing: bool = False,
                offload: bool = False, reshard_after_forward: bool = True) -> torch.nn.Module:
    """Shard `model` in place over `mesh` (1-D data-parallel). Frozen models (reference, RM) shard the same way;
    `offload` keeps their shards in CPU memory between uses."""
    if is_sharded(model):
        return model
    if activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    kwargs = {"mesh": mesh, "reshard_after_forward": reshard_after_forward}
    if offload:
        kwargs["offload_policy"] = CPUOffloadPolicy()
    for block in transformer_blocks(model):
        fully_shard(block, **kwargs)
    # The root (embeddings, final norm, heads) stays gathered after its forward: heads.py reads the LM / score
    # head right after the forward, outside of it. Its shards come back after backward.
    fully_shard(model, **{**kwargs, "reshard_after_forward": False})
    return model


def full_state_dict(model: torch.nn.Module) -> dict:
    """The full (unsharded) weights on CPU, for save_pretrained: every rank must call it (it gathers); with a
    sharded model only rank 0 receives them (the others get an empty dict)."""
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


@functools.lru_cache(maxsize=None)
def data_parallel_mesh(strategy: str, device_type: str, world: int) -> DeviceMesh:
    """fsdp: one dimension, parameters sharded over every rank. ddp: (world, 1), replicated over every rank.
    Cached: a mesh creates process groups, and a pipeline shards several models per stage."""
    if strategy == "ddp":
        return init_device_mesh(device_type, (world, 1), mesh_dim_names=("replicate", "shard"))
    return init_device_mesh(device_type, (world,), mesh_dim_names=("shard",))


def parallelize(model: torch.nn.Module, trainer: DictConfig, device: torch.device, *, frozen: bool = False) -> None:
    """Apply trainer.strategy to one model (from a LightningModule's configure_model): ddp / fsdp shard it, any
    other strategy leaves it alone. Frozen models (PPO's reference and RM) skip activation checkpointing (they
    never run backward) and are offloaded to CPU between uses when trainer.offload_frozen is set."""
    if trainer.strategy not in distributed.MULTI_PROCESS_STRATEGIES or not isinstance(model, PreTrainedModel):
        return
    mesh = data_parallel_mesh(trainer.strategy, device.type, distributed.world_size())
    shard_model(model, mesh, activation_checkpointing=trainer.activation_checkpointing and not frozen,
                offload=trainer.offload_frozen and frozen)


def local_fraction(model: torch.nn.Module) -> float:
    """The share of the model's parameters this rank holds (1.0 unsharded, 1/world fully sharded)."""
    from torch.distributed.tensor import DTensor

    local = sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in model.parameters())
    return local / max(sum(p.numel() for p in model.parameters()), 1)


def save_pretrained(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, directory: Path) -> Path:
    """`save_pretrained` for sharded, LoRA and plain models alike: every rank joins the gather, rank 0 writes."""
    state = full_state_dict(model) if is_sharded(model) or has_lora(model) else None
    if state is not None and has_lora(model):  # adapters merged: the export is a plain HF model
        state = merge_lora_state(state, model._pairwise_rl_lora_scaling)
    if distributed.is_main():
        model.save_pretrained(directory, state_dict=state)
        tokenizer.save_pretrained(directory)
    distributed.barrier()
    return Path(directory)
