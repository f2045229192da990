"""FSDP2 on CPU with gloo, 2 processes: parameters are really sharded, and one optimisation step equals the
single-process step on the same (whole) batch, for the BT RM loss and the PPO policy loss."""

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from pairwise_rl.models.sharding import transformer_blocks

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny(kind: str, seed: int):
    from omegaconf import OmegaConf

    from transformers import AutoModelForSequenceClassification

    from pairwise_rl.models.factory import build_tiny_causal_lm
    from pairwise_rl.models.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    tiny = OmegaConf.create({"arch": "llama", "hidden_size": 32, "num_layers": 2, "num_heads": 4,
                             "intermediate_size": 64, "max_position_embeddings": 64})
    model = build_tiny_causal_lm(tiny, tokenizer, seed)
    if kind == "rm":  # the BT RM: the same backbone config with a 1-output score head, seeded
        model.config.num_labels = 1
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(model.config)
    return model, tokenizer


def _batch(kind: str, tokenizer):
    """A fixed batch of 8 rows (each rank takes its half in the sharded run)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, len(tokenizer), (8, 12), generator=g)
    if kind == "rm":
        return {"chosen": ids, "rejected": torch.randint(4, len(tokenizer), (8, 12), generator=g)}
    return {"ids": ids, "old_logprobs": -torch.rand(8, 6, generator=g) - 1.0, "advantages": torch.randn(8, 6,
            generator=g), "mask": torch.ones(8, 6)}


def _loss(kind: str, model, batch, rows: slice):
    from pairwise_rl.algos.ppo import policy_loss, token_logprobs
    from pairwise_rl.algos.preference import bt_loss
    from pairwise_rl.models.heads import hidden_states, lm_head_logits, scalar_head

    if kind == "rm":
        ones = torch.ones_like(batch["chosen"][rows])
        r_c = scalar_head(model, hidden_states(model, batch["chosen"][rows], ones))[:, -1]
        r_r = scalar_head(model, hidden_states(model, batch["rejected"][rows], ones))[:, -1]
        return bt_loss(r_c, r_r)
    ids = batch["ids"][rows]
    hidden = hidden_states(model, ids, torch.ones_like(ids))[:, 5:-1]  # the positions predicting tokens 6..11
    logprobs = token_logprobs(lm_head_logits(model, hidden), ids[:, 6:])
    loss, _ = policy_loss(logprobs, batch["old_logprobs"][rows], batch["advantages"][rows], batch["mask"][rows],
                          0.2, None)
    return loss


def _step(model, compute_loss):
    # The optimiser is made before the forward, as in any training loop (after it, FSDP has swapped the root's
    # gathered tensors in). SGD: an update proportional to the gradient. Adam's first step is lr * sign(g), which
    # turns the float noise of a different reduction order on near-zero gradients into full-size differences.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    compute_loss().backward()
    optimizer.step()


def _worker(rank: int, kind: str, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    from pairwise_rl.models.sharding import full_state_dict, shard_model

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    model, tokenizer = _tiny(kind, seed=7)
    full = {n: list(p.shape) for n, p in model.named_parameters()}
    shard_model(model, init_device_mesh("cpu", (WORLD,)))
    local = {n: p.to_local().numel() for n, p in model.named_parameters() if isinstance(p, DTensor)}
    batch = _batch(kind, tokenizer)
    half = slice(rank * 4, rank * 4 + 4)  # data parallel: each rank its own half of the batch
    _step(model, lambda: _loss(kind, model, batch, half))
    state = {k: v.tolist() for k, v in full_state_dict(model).items()}
    Path(out.format(rank=rank)).write_text(json.dumps({"full": full, "local": local, "state": state}))
    # Only rank 0 receives the gathered state; rank 1's sends can return before rank 0 has read them, and tearing
    # the group down then aborts gloo (seen once in CI as SIGABRT). Leave together.
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.parametrize("kind", ["rm", "ppo"])
def test_two_process_fsdp2_shards_parameters_and_matches_a_single_process_step(kind, tmp_path):
    out = str(tmp_path / "rank{rank}.json")
    mp.start_processes(_worker, args=(kind, _free_port(), out), nprocs=WORLD, start_method="spawn")
    ranks = [json.loads(Path(out.format(rank=r)).read_text()) for r in range(WORLD)]
    result = ranks[0]

    # every parameter is a DTensor split along dim 0: the ranks' local shards add up to the whole parameter, and
    # every parameter with at least WORLD rows is really divided (no rank holds it all)
    assert set(result["local"]) == set(result["full"])
    for name, shape in result["full"].items():
        numel = torch.Size(shape).numel()
        assert sum(r["local"][name] for r in ranks) == numel, name
        if shape[0] >= WORLD:
            assert all(0 < r["local"][name] < numel for r in ranks), name

    model, tokenizer = _tiny(kind, seed=7)
    _step(model, lambda: _loss(kind, model, _batch(kind, tokenizer), slice(0, 8)))
    reference = model.state_dict()
    for name, values in result["state"].items():
        assert torch.allclose(torch.tensor(values), reference[name], atol=1e-5, rtol=1e-4), name


def test_transformer_blocks_are_found_for_every_tiny_arch():
    from omegaconf import OmegaConf

    from pairwise_rl.models.factory import build_tiny_causal_lm
    from pairwise_rl.models.tokenizer import build_char_tokenizer

    for arch in ("llama", "qwen2", "gpt2"):
        tiny = OmegaConf.create({"arch": arch, "hidden_size": 32, "num_layers": 3, "num_heads": 4,
                                 "intermediate_size": 64, "max_position_embeddings": 64})
        assert len(transformer_blocks(build_tiny_causal_lm(tiny, build_char_tokenizer(), 0))) == 3
