import pytest
import torch
from omegaconf import OmegaConf

from pairwise_rl.data.encoding import IGNORE_INDEX
from pairwise_rl.models import packing
from pairwise_rl.models.factory import TINY_ARCHS, build_tiny_causal_lm, load_scalar_model
from pairwise_rl.models.heads import causal_lm_loss, hidden_states, last_hidden
from pairwise_rl.models.packing import (attention_break_even, contiguous_rows, first_fit_decreasing, plan_packing,
                                         row_cost)
from pairwise_rl.models.tokenizer import build_char_tokenizer

TINY = dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=64)


def test_first_fit_decreasing_by_hand():
    # Longest first: 5 -> bin 0; 4 -> bin 1; 3 fits beside the 4 (4 + 3 = 7); 2 fits beside the 5.
    assert first_fit_decreasing([5, 3, 4, 2], capacity=7) == [(0, 0), (1, 4), (1, 0), (0, 5)]
    with pytest.raises(ValueError, match="item 1 has 9 tokens"):
        first_fit_decreasing([2, 9], capacity=8)


def test_plan_packing_layout_by_hand():
    # Three rows of width 4: a left-padded run of 2, a left-padded run of 3, a right-padded run of 1.
    ids = torch.tensor([[0, 0, 11, 12], [0, 21, 22, 23], [31, 0, 0, 0]])
    mask = (ids != 0).long()
    plan = plan_packing(ids, mask, pad_id=0, width_factor=1.5)  # capacity 6
    # First-fit decreasing: the 3 -> row 0 at 0; the 2 -> row 0 at 3; the 1 -> row 0 at 5: one row of 6.
    assert plan.input_ids.tolist() == [[21, 22, 23, 11, 12, 31]]
    assert plan.position_ids.tolist() == [[0, 1, 2, 0, 1, 0]]
    hidden = torch.arange(6.0).view(1, 6, 1)
    assert plan.unpack(hidden).squeeze(-1).tolist() == [[0, 0, 3, 4], [0, 0, 1, 2], [5, 0, 0, 0]]


def test_plan_packing_layout_by_hand_mask():
    ids = torch.tensor([[0, 0, 11, 12], [0, 21, 22, 23], [31, 0, 0, 0]])
    plan = plan_packing(ids, (ids != 0).long(), pad_id=0, width_factor=1.5)
    expected = [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0],  # 21 22 23
                [0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 1, 0],                      # 11 12
                [0, 0, 0, 0, 0, 1]]                                          # 31
    assert plan.attention_mask.shape == (1, 1, 6, 6)
    assert plan.attention_mask[0, 0].long().tolist() == expected


def test_shared_prefixes_are_computed_once():
    ids = torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 7, 0], [9, 9, 0, 0, 0, 0]])
    plan = plan_packing(ids, (ids != 0).long(), pad_id=0, width_factor=1.5)  # capacity 9
    # Sorted: 123456, 12347 (shares 4 tokens: one tree of 6 + 1 nodes), 99 (a tree of 2) beside it.
    assert plan.input_ids.tolist() == [[1, 2, 3, 4, 5, 6, 7, 9, 9]]
    assert plan.position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 4, 0, 1]]
    assert plan.attention_mask[0, 0, 6].long().tolist() == [1, 1, 1, 1, 0, 0, 1, 0, 0]  # 7 sees 1 2 3 4 and itself
    assert plan.attention_mask[0, 0, 5].long().tolist() == [1, 1, 1, 1, 1, 1, 0, 0, 0]
    # Both sequences read the shared cells 0-3 back.
    unpacked = plan.unpack(torch.arange(9.0).view(1, 9, 1)).squeeze(-1)
    assert unpacked.tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 6, 0], [7, 8, 0, 0, 0, 0]]


def test_short_shared_prefixes_and_duplicates():
    # 3 shared tokens (< MIN_SHARED_TOKENS): separate trees; an exact duplicate: no new cells at all.
    ids = torch.tensor([[1, 2, 3, 8, 8, 0, 0, 0], [1, 2, 3, 9, 9, 0, 0, 0], [5, 5, 5, 5, 5, 0, 0, 0],
                        [5, 5, 5, 5, 5, 0, 0, 0]])
    plan = plan_packing(ids, (ids != 0).long(), pad_id=0, width_factor=1.0)
    assert plan.input_ids.shape == (3, 8)  # three trees of 5 nodes, none fits beside another in 8 cells
    assert sorted(t for t in plan.input_ids.view(-1).tolist() if t) == sorted([1, 2, 3, 8, 8, 1, 2, 3, 9, 9] + [5] * 5)
    unpacked = plan.unpack(plan.input_ids.unsqueeze(-1)).squeeze(-1)
    assert torch.equal(unpacked, ids)


def test_plan_packing_declines_when_nothing_is_gained_or_rows_have_holes():
    full = torch.arange(1, 21).view(4, 5)
    assert plan_packing(full, torch.ones_like(full), pad_id=0) is None  # no padding, nothing shared
    holes = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 0]])
    assert not contiguous_rows(holes) and plan_packing(holes, holes, pad_id=0) is None
    assert contiguous_rows(torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0]]))


def _padded_batch(tokenizer, texts, left):
    rows = [tokenizer(t)["input_ids"] for t in texts]
    width = max(len(r) for r in rows) + 2  # every row has padding
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        # Left-padded rows (judge inputs) and rows padded on both sides (prompt | response), as the stages make them.
        start = width - len(r) if left else (i % 3)
        ids[i, start:start + len(r)] = torch.tensor(r)
        mask[i, start:start + len(r)] = 1
    return ids, mask


# Shared prefixes of many lengths, a sequence that is a prefix of another, and an exact duplicate.
TEXTS = ["sort: 3 1 2 = 1 2 3", "add: 5 7 = 12", "reverse: 1 2 3 4 5 6 = 6 5 4 3 2 1", "a", "sort: 9 8 = 8 9",
         "add: 1 1 = 2", "reverse: 4 2 = 2 4", "reverse: 1 2 3 4 5 6 = 6 5 4 1 2 3", "add: 5 7 =", "add: 5 7 = 12"]


@pytest.mark.parametrize("arch", TINY_ARCHS.names())
@pytest.mark.parametrize("left", [True, False])
def test_packed_forward_equals_padded_forward_with_gradients(arch, left):
    tokenizer = build_char_tokenizer()
    model = build_tiny_causal_lm(OmegaConf.create({"arch": arch, **TINY}), tokenizer, seed=0)
    ids, mask = _padded_batch(tokenizer, TEXTS, left)
    plan = packing.plan_for(model, ids, mask)
    assert plan is not None and plan.cells < ids.numel() * 0.6  # this batch does pack, and shares
    results = {}
    for enabled in (False, True):
        with packing.disabled(not enabled):
            model.zero_grad()
            hidden = hidden_states(model, ids, mask)
            (hidden * mask.unsqueeze(-1)).pow(2).sum().backward()
            results[enabled] = (hidden * mask.unsqueeze(-1), [p.grad.clone() for p in model.parameters()])
    (padded, padded_grads), (packed, packed_grads) = results[False], results[True]
    assert torch.allclose(packed, padded, atol=1e-5)
    for a, b in zip(packed_grads, padded_grads):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_packed_scalar_model_reads_the_same_last_hidden(tmp_path):
    tokenizer = build_char_tokenizer()
    build_tiny_causal_lm(OmegaConf.create({"arch": "llama", **TINY}), tokenizer, seed=0).save_pretrained(tmp_path)
    scalar = load_scalar_model(str(tmp_path))
    ids, mask = _padded_batch(tokenizer, TEXTS, left=True)
    with packing.disabled():
        padded = last_hidden(scalar, ids, mask)
    assert torch.allclose(last_hidden(scalar, ids, mask), padded, atol=1e-5)


def test_causal_lm_loss_equals_transformers_loss():
    tokenizer = build_char_tokenizer()
    model = build_tiny_causal_lm(OmegaConf.create({"arch": "llama", **TINY}), tokenizer, seed=0)
    ids, mask = _padded_batch(tokenizer, TEXTS, left=False)
    labels = torch.where(mask.bool(), ids, IGNORE_INDEX)
    labels[:, :3] = IGNORE_INDEX  # a masked prompt
    expected = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert torch.allclose(causal_lm_loss(model, ids, mask, labels), expected, atol=1e-5)


def test_attention_without_custom_masks_runs_padded():
    class FlashAttention:
        config = OmegaConf.create({"_attn_implementation": "flash_attention_2", "pad_token_id": 0})

    ids = torch.tensor([[1, 2, 0, 0], [3, 0, 0, 0]])
    assert packing.plan_for(FlashAttention(), ids, (ids != 0).long()) is None


def test_row_cost_and_attention_break_even_by_hand():
    assert row_cost(100, 50, 200.0) == 125.0  # 100 cells x (1 + 50 / 200)
    tokenizer = build_char_tokenizer()
    model = build_tiny_causal_lm(OmegaConf.create({"arch": "llama", **TINY}), tokenizer, seed=0)
    # A llama layer of width 32, MLP 64: q k v o 4 x 32^2 + gate/up/down 3 x 32 x 64 + two norms 2 x 32 = 10,304
    # parameters; the embedding (tied) 100 x 32 and the final norm 32 are outside. (2 x 10,304 + 32) / 2 layers
    # / (2 x 32) = 161.25.
    assert len(tokenizer) == 100
    assert attention_break_even(model) == pytest.approx((2 * 10_304 + 32) / 2 / 64)


def test_the_cheapest_row_width_is_chosen():
    # Eight 10-token sequences sharing nothing, padded to 16. Widths tried: 16 / 24 / 32 / 48 / 64 (multiples of
    # T) and 20 (two of the largest tree; one, 10, is narrower than T): they hold 1 / 2 / 3 / 4 / 6 and 2 a row,
    # so 128 / 96 / 96 / 96 / 128 and 80 cells. Rows of 20 win whether attention is free or dominant.
    ids = torch.zeros(8, 16, dtype=torch.long)
    ids[:, :10] = torch.arange(1, 81).view(8, 10)
    mask = (ids != 0).long()
    assert plan_packing(ids, mask, 0, attention_width=1e9).input_ids.shape == (4, 20)
    assert plan_packing(ids, mask, 0, attention_width=1.0).input_ids.shape == (4, 20)
    # A forced width: 1.5 x 16 = 24, two a row.
    assert plan_packing(ids, mask, 0, width_factor=1.5).input_ids.shape == (4, 24)


def test_eager_attention_reads_the_additive_mask():
    tokenizer = build_char_tokenizer()
    model = build_tiny_causal_lm(OmegaConf.create({"arch": "llama", **TINY}), tokenizer, seed=0)
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager"
    ids, mask = _padded_batch(tokenizer, TEXTS, left=True)
    with packing.disabled():
        padded = hidden_states(model, ids, mask)
    assert packing.plan_for(model, ids, mask) is not None
    assert torch.allclose(hidden_states(model, ids, mask) * mask.unsqueeze(-1), padded * mask.unsqueeze(-1), atol=1e-5)


def test_disabled_restores_the_setting():
    assert packing.enabled()
    with packing.disabled():
        assert not packing.enabled()
        with packing.disabled(off=False):
            assert not packing.enabled()  # off=False keeps what is set
    assert packing.enabled()
