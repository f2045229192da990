"""FSDP2 for HF transformers: `fully_shard` each decoder block, then the root (embeddings, final norm, heads).

Sharding per block is what bounds memory: a block's full weights exist only while it computes (forward, and
again in backward), then are freed back to this rank's shard. Used by `trainer.strategy=fsdp` (Lightning's
ModelParallelStrategy calls the modules' `configure_model`) and directly by the equivalence tests.
"""

from __future__ import annotations

from typing import List

import torch
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, fully_shard


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
