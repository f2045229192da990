"""Padding-free forward passes that compute every shared prefix once.

A padded batch (B, T) spends compute on every padding position, and many batches repeat their prefixes: a BT pair's
chosen and rejected responses follow the same prompt, a judge reads "prompt, A: anchor, B: response" for every
sample of a prompt and the prompt again in the other order, a PPO group's samples share their prompt. Packing lays
the batch out as a prefix tree (trie) of its token sequences instead: each distinct prefix is one node, computed
once; each sequence is a path through the tree. Trees are placed into rows of a few times T tokens by first-fit
decreasing (the width chosen per batch by a cost model, see `row_cost`), and one 4D attention mask lets each token attend to exactly its own path (its ancestors and
itself), with position ids equal to its depth. So every real token's hidden state equals the padded forward's up to
float rounding (tests/models/test_packing.py checks values and gradients on each tiny architecture), and
gradients through a shared node are the sum of its sequences' gradients, as in the padded batch.

Sequences that share nothing become separate paths: plain padding-free packing. The hidden states come back in the
padded layout (zeros at padding), so callers keep their shapes.
"""

from __future__ import annotations

import os
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence

import torch

# Attention implementations that take a custom 4D mask (bool for sdpa, additive for eager); others run padded.
MASKED_ATTENTION = frozenset({"sdpa", "eager"})
# Packing pays for its bookkeeping only where it removes work: below this share of saved tokens it runs padded.
MIN_SAVING = 0.1
# Row widths tried, as multiples of the padded width T. Wider rows fill better (a tree must stay in one row), but
# dense attention pays for the whole row width per token. Measured on the default tiny judge batch (128 x 73, both
# orders of 64 pairs): rows of 1 / 1.5 / 2 / 3 / 4 x T kept 7300 / 7303 / 6278 / 5475 / 5256 cells and took
# 217 / 219 / 196 / 167 / 194 ms against 276 padded; the cost model picks 3 x T there.
WIDTH_FACTORS = (1.0, 1.5, 2.0, 3.0, 4.0)
# Neighbouring sequences (in sorted order) sharing fewer tokens than this are packed as separate trees: a tree must
# stay in one row, and tiny shared prefixes would tie sequences together for almost no saving.
MIN_SHARED_TOKENS = 4


def first_fit_decreasing(sizes: Sequence[int], capacity: int) -> List[tuple[int, int]]:
    """(bin, offset) of each item: items in decreasing size, each into the first bin with room."""
    placement: List[Optional[tuple[int, int]]] = [None] * len(sizes)
    used: List[int] = []
    for item in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        size = sizes[item]
        if size > capacity:
            raise ValueError(f"item {item} has {size} tokens, more than the packing capacity {capacity}")
        for bin_index, filled in enumerate(used):
            if filled + size <= capacity:
                placement[item] = (bin_index, filled)
                used[bin_index] = filled + size
                break
        else:
            placement[item] = (len(used), 0)
            used.append(size)
    return placement  # type: ignore[return-value]


def run_starts(mask: torch.Tensor) -> torch.Tensor:
    """Each row's first real column (the width for an empty row)."""
    return torch.where(mask, torch.arange(mask.shape[1], device=mask.device), mask.shape[1]).min(-1).values


def contiguous_rows(attention_mask: torch.Tensor) -> bool:
    """Every row's real tokens form one run (left-padded prompts, right-padded responses, or both)."""
    mask = attention_mask.bool()
    lengths = mask.sum(-1)
    last = torch.where(mask, torch.arange(mask.shape[1], device=mask.device), -1).max(-1).values
    return bool(((last - run_starts(mask) + 1 == lengths) | (lengths == 0)).all())


def shared_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    return len(os.path.commonprefix([a, b]))  # commonprefix compares any sequences element-wise


@dataclass
class PackedBatch:
    """Where every real token of a padded (B, T) batch sits in the packed (R, C) one."""

    input_ids: torch.Tensor       # (R, C) one token per tree node; unused tail cells hold the pad id
    position_ids: torch.Tensor    # (R, C) a node's depth in its tree: its position in every sequence through it
    attention_mask: torch.Tensor  # (R, 1, C, C) bool: a node attends to its ancestors and itself
    padded_index: torch.Tensor    # (N,) flat index into B*T of each real token
    packed_index: torch.Tensor    # (N,) flat index into R*C of the node that computes it (shared nodes repeat)
    shape: tuple[int, int]        # (B, T)

    @property
    def cells(self) -> int:
        return self.input_ids.numel()

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """(R, C, ...) packed outputs -> (B, T, ...) in the padded layout, zeros at padding (differentiable)."""
        rows, width = self.shape
        flat = packed.reshape(-1, *packed.shape[2:])
        out = flat.new_zeros((rows * width, *packed.shape[2:]))
        out = out.index_copy(0, self.padded_index, flat.index_select(0, self.packed_index))
        return out.view(rows, width, *packed.shape[2:])

    def model_mask(self, attention_implementation: str, dtype: torch.dtype) -> torch.Tensor:
        if attention_implementation == "sdpa":
            return self.attention_mask
        # eager adds the mask to the scores
        blocked = torch.finfo(dtype).min
        return torch.zeros(self.attention_mask.shape, dtype=dtype,
                           device=self.attention_mask.device).masked_fill(~self.attention_mask, blocked)


def _trees(order: List[int], lengths: List[int], shared_with_previous: List[int],
           capacity: int) -> List[List[tuple[int, int]]]:
    """Sequences (in sorted order) grouped into trees of at most `capacity` nodes: lists of (sequence, tokens it
    shares with the previous sequence of its tree)."""
    trees: List[List[tuple[int, int]]] = []
    size = 0
    for position, seq in enumerate(order):
        shared = shared_with_previous[position]
        if position == 0 or shared < MIN_SHARED_TOKENS or size + lengths[seq] - shared > capacity:
            trees.append([])
            shared, size = 0, 0
        trees[-1].append((seq, shared))
        size += lengths[seq] - shared
    return trees


def _tree_size(tree: List[tuple[int, int]], lengths: List[int]) -> int:
    """Cells a tree takes: each sequence's tokens beyond what it shares with the one before it."""
    return sum(lengths[seq] - shared for seq, shared in tree)


_TRIL: Dict[int, tuple[torch.Tensor, torch.Tensor]] = {}


def _tril(length: int) -> tuple[torch.Tensor, torch.Tensor]:
    if length not in _TRIL:
        _TRIL[length] = tuple(torch.tril_indices(length, length))  # type: ignore[assignment]
    return _TRIL[length]


def row_cost(cells: int, width: int, attention_width: float) -> float:
    """Relative forward cost of `cells` tokens in rows `width` wide: a token's dense work (projections, MLP) plus
    its dense attention over the row, which costs as much as the dense work at `attention_width` (see
    attention_break_even)."""
    return cells * (1.0 + width / attention_width)


def attention_break_even(model) -> float:
    """The row width at which a token's attention FLOPs (4 x width x hidden a layer: scores and values) equal its
    other FLOPs (2 x parameters a layer): 640 for the default tiny model, about 3,100 for SmolLM2-135M."""
    config = model.config
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd")
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer")
    vocab = getattr(config, "vocab_size", 0)
    params = sum(p.numel() for p in model.parameters())
    per_layer = max(params - vocab * hidden, hidden * hidden) / layers
    return per_layer / (2 * hidden)


def plan_packing(input_ids: torch.Tensor, attention_mask: torch.Tensor, pad_id: int,
                 width_factor: Optional[float] = None, attention_width: float = 640.0) -> Optional[PackedBatch]:
    """The packed prefix-tree layout of a padded (B, T) batch, or None where it would not save MIN_SAVING of the
    cost (row_cost) or the rows are not contiguous runs (then the caller runs padded). The row width is
    `width_factor` x T, or the cheapest by row_cost of WIDTH_FACTORS x T and one or two largest trees."""
    rows, width = input_ids.shape
    mask = attention_mask.bool()
    if not contiguous_rows(mask):
        return None
    lengths = mask.sum(-1).tolist()
    starts = run_starts(mask).tolist()
    ids = input_ids.tolist()
    tokens = [ids[i][starts[i]:starts[i] + lengths[i]] for i in range(rows)]
    order = sorted((i for i in range(rows) if lengths[i] > 0), key=lambda i: tokens[i])
    # In sorted order a sequence's longest shared prefix with any earlier one is the one with its predecessor.
    shared_with_previous = [0] + [shared_prefix_length(tokens[a], tokens[b]) for a, b in zip(order, order[1:])]
    if width_factor is not None:
        widths = [max(width, int(width * width_factor))]
    else:
        # Multiples of T, and rows exactly one or two of the largest trees wide: a judge's tree (a prompt and both
        # orders) is often a little wider than T, and a row of 1.5 T would leave a third of it empty.
        widest = max(width, int(width * WIDTH_FACTORS[-1]))
        trees = _trees(order, lengths, shared_with_previous, widest)
        largest = max((_tree_size(tree, lengths) for tree in trees), default=width)
        widths = sorted({max(width, int(width * f)) for f in WIDTH_FACTORS} |
                        {k * largest for k in (1, 2) if width <= k * largest <= widest})
    best = None
    for capacity in widths:
        trees = _trees(order, lengths, shared_with_previous, capacity)
        sizes = [_tree_size(tree, lengths) for tree in trees]
        placement = first_fit_decreasing(sizes, capacity)
        packed_rows = 1 + max((b for b, _ in placement), default=0)
        cost = row_cost(packed_rows * capacity, capacity, attention_width)
        if best is None or cost < best[0]:
            best = (cost, capacity, trees, placement, packed_rows)
    cost, capacity, trees, placement, packed_rows = best
    if cost > (1 - MIN_SAVING) * row_cost(rows * width, width, attention_width):
        return None

    # Each sequence's path: the packed cell of every one of its tokens.
    paths: List[List[int]] = [[] for _ in range(rows)]
    cell_token = [pad_id] * (packed_rows * capacity)
    # Unused cells attend only to themselves; position 0 keeps them inside any learned position table (GPT-2).
    cell_depth = [0] * (packed_rows * capacity)
    for tree, (row, offset) in zip(trees, placement):
        next_cell = row * capacity + offset
        previous: List[int] = []
        for seq, shared in tree:
            end = next_cell + lengths[seq] - shared  # the fresh cells are contiguous: [next_cell, end)
            cell_token[next_cell:end] = tokens[seq][shared:]
            cell_depth[next_cell:end] = range(shared, lengths[seq])
            paths[seq] = previous = previous[:shared] + list(range(next_cell, end))
            next_cell = end

    device = input_ids.device
    padded_index = mask.reshape(-1).nonzero().squeeze(-1)  # row-major: row by row, each run in order, as `paths`
    packed_index = torch.tensor([cell for path in paths for cell in path], dtype=torch.long, device=device)
    # The attention mask: each sequence's tokens attend along its path (a lower triangle indexed by the path),
    # built for all paths of one length at a time.
    by_length: Dict[int, List[List[int]]] = {}
    for path in paths:
        if path:
            by_length.setdefault(len(path), []).append(path)
    queries, keys = [], []
    for length, group in by_length.items():
        q, k = _tril(length)
        cells = torch.tensor(group)
        queries.append(cells[:, q].reshape(-1))
        keys.append(cells[:, k].reshape(-1))
    attend = torch.zeros(packed_rows * capacity, capacity, dtype=torch.bool)
    diagonal = torch.arange(packed_rows * capacity)
    attend[diagonal, diagonal % capacity] = True  # unused tail cells attend to themselves (no empty softmax)
    if queries:
        q, k = torch.cat(queries), torch.cat(keys)
        attend[q, k % capacity] = True
    return PackedBatch(torch.tensor(cell_token, dtype=input_ids.dtype, device=device).view(packed_rows, capacity),
                       torch.tensor(cell_depth, dtype=torch.long, device=device).view(packed_rows, capacity),
                       attend.view(packed_rows, 1, capacity, capacity).to(device), padded_index, packed_index,
                       (rows, width))


_BREAK_EVEN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # per model: its size does not change
_enabled = True  # `trainer.packing`, set for the process by the CLI (pairwise_rl.cli.run)


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = bool(enabled)


def enabled() -> bool:
    return _enabled


@contextmanager
def disabled(off: bool = True) -> Iterator[None]:
    """Padded forwards inside the block (the before of a benchmark, the reference of a test); `off=False` leaves
    the setting as it is."""
    previous = _enabled
    set_enabled(previous and not off)
    try:
        yield
    finally:
        set_enabled(previous)


def plan_for(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Optional[PackedBatch]:
    """The packed layout for this model's forward, or None to run padded (packing off, an attention implementation
    without custom masks, or nothing to gain)."""
    config = getattr(model, "config", None)
    if not _enabled or getattr(config, "_attn_implementation", None) not in MASKED_ATTENTION:
        return None
    pad_id = config.pad_token_id if config.pad_token_id is not None else 0
    if model not in _BREAK_EVEN:
        _BREAK_EVEN[model] = attention_break_even(model)
    return plan_packing(input_ids, attention_mask, pad_id, attention_width=_BREAK_EVEN[model])
