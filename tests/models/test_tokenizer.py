from transformers import AutoTokenizer

from pairwise_rl.models.tokenizer import build_char_tokenizer


def test_char_tokenizer_round_trips_through_save_and_load(tmp_path):
    tokenizer = build_char_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "sort: 4 9 1 7 =\nA: 1 4 7 9\nBetter:"
    ids = loaded(text)["input_ids"]
    assert ids == tokenizer(text)["input_ids"]
    assert len(ids) == len(text) + 1  # one token per character, plus bos
    assert ids[0] == loaded.bos_token_id
    assert loaded.decode(ids, skip_special_tokens=True) == text
    assert loaded.decode(loaded(" 1 2", add_special_tokens=False)["input_ids"]) == " 1 2"  # spaces survive
    assert (loaded.pad_token, loaded.eos_token, loaded.padding_side) == ("<pad>", "<eos>", "left")
    assert len({loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id, loaded.unk_token_id}) == 4


def test_unknown_characters_map_to_unk():
    tokenizer = build_char_tokenizer()
    ids = tokenizer("1é2", add_special_tokens=False)["input_ids"]
    assert ids[1] == tokenizer.unk_token_id and len(ids) == 3
