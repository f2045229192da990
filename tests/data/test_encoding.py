import torch

from pairwise_rl.data.encoding import (IGNORE_INDEX, encode_prompts, encode_sft_batch, left_pad,
                                       position_ids_from_mask, right_pad)
from pairwise_rl.models.tokenizer import build_char_tokenizer


def test_padding_helpers():
    ids, mask = left_pad([[5, 6], [7]], pad_id=0)
    assert ids.tolist() == [[5, 6], [0, 7]] and mask.tolist() == [[1, 1], [0, 1]]
    ids, mask = right_pad([[5, 6], [7]], pad_id=0)
    assert ids.tolist() == [[5, 6], [7, 0]] and mask.tolist() == [[1, 1], [1, 0]]
    assert position_ids_from_mask(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])).tolist() == [
        [0, 0, 0, 1, 2], [0, 1, 2, 3, 3]]


def test_sft_batch_masks_prompt_and_padding_and_ends_with_eos():
    tok = build_char_tokenizer()
    batch = encode_sft_batch(tok, ["add: 1 + 1 =", "sort: 3 1 ="], [" 2", " 1 3"], 64, 24)
    first_labels = batch["labels"][0].tolist()
    prompt_len = len("add: 1 + 1 =") + 1  # + bos
    assert first_labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    response = first_labels[prompt_len:prompt_len + 3]
    assert tok.decode(response[:2]) == " 2" and response[2] == tok.eos_token_id
    assert all(x == IGNORE_INDEX for x in first_labels[prompt_len + 3:])  # right padding is ignored
    assert batch["attention_mask"].sum(1).tolist() == [prompt_len + 3, len("sort: 3 1 =") + 1 + 5]


def test_prompts_keep_their_end_when_truncated():
    tok = build_char_tokenizer()
    batch = encode_prompts(tok, ["sort: 1 2 3 4 5 ="], max_tokens=6)
    assert tok.decode(batch["input_ids"][0]) == " 4 5 ="


def test_batched_prompt_encoding_equals_encoding_each_prompt():
    from pairwise_rl.data.encoding import encode_prompt

    tok = build_char_tokenizer()
    prompts = ["sort: 4 9 1 =", "add: 352 + 71 =", "x" * 30]
    batch = encode_prompts(tok, prompts, 12)
    ids, mask = left_pad([encode_prompt(tok, p, 12) for p in prompts], tok.pad_token_id)
    assert torch.equal(batch["input_ids"], ids) and torch.equal(batch["attention_mask"], mask)


def test_decoded_responses_stop_at_the_first_eos_and_drop_padding():
    from pairwise_rl.models.generation import decode_responses, response_mask_from_ids

    tok = build_char_tokenizer()
    a, b = tok(" 1 4", add_special_tokens=False)["input_ids"], tok(" 7", add_special_tokens=False)["input_ids"]
    eos, pad = tok.eos_token_id, tok.pad_token_id
    rows = torch.tensor([a + [eos] + b, b + [eos] + [pad] * 4, a + b + [pad]])  # text after eos, padding, no eos
    assert decode_responses(tok, rows, response_mask_from_ids(rows, eos)) == [" 1 4", " 7", " 1 4 7"]


def test_batched_scored_sequences_equal_the_per_row_encoding():
    from pairwise_rl.data.encoding import encode_prompt, encode_response, encode_scored_sequences

    tokenizer = build_char_tokenizer()
    prompts, responses = ["sort: 3 1 2 =", "a much longer prompt than the limit allows ="], ["1 2 3", "x" * 40]
    batched = encode_scored_sequences(tokenizer, prompts, responses, 16, 8)
    rows = [encode_prompt(tokenizer, p, 16) + encode_response(tokenizer, r, 8) for p, r in zip(prompts, responses)]
    ids, mask = left_pad(rows, tokenizer.pad_token_id)
    assert torch.equal(batched["input_ids"], ids) and torch.equal(batched["attention_mask"], mask)
    assert batched["input_ids"][1, -1] == tokenizer.eos_token_id


def test_batched_truncation_equals_truncating_each_text():
    from pairwise_rl.data.encoding import truncate_text, truncate_texts

    tokenizer = build_char_tokenizer()
    texts = ["short", "exactly10!", "this one is far too long"]
    for keep in ("start", "end"):
        assert truncate_texts(tokenizer, texts, 10, keep) == [truncate_text(tokenizer, t, 10, keep) for t in texts]
    assert truncate_texts(tokenizer, texts, 10, "end")[2] == "r too long"  # its last 10 characters
