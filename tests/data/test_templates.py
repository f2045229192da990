import pytest

from pairwise_rl.data.records import Preference
from pairwise_rl.data.templates import (A_WINS, B_WINS, VERDICT_FORMATS, render, swap_augment, verdict_ids_by_verdict,
                                        verdict_token_ids)
from pairwise_rl.models.tokenizer import build_char_tokenizer


def test_render_fills_slots_and_leaves_other_braces_alone():
    out = render('{"rule": 1}\n{prompt}\nA:{a}\nB:{b}\nBetter:', "add: 1 + 1 =", " 2", " 3")
    assert out == '{"rule": 1}\nadd: 1 + 1 =\nA: 2\nB: 3\nBetter:'


def test_swap_augmentation_doubles_and_mirrors_the_pairs():
    pairs = [Preference("p1", "good", "bad"), Preference("p2", "x", "y")]
    rows = swap_augment(pairs)
    assert rows == [("p1", "good", "bad", A_WINS), ("p1", "bad", "good", B_WINS),
                    ("p2", "x", "y", A_WINS), ("p2", "y", "x", B_WINS)]


def test_verdict_tokens_must_be_single_tokens():
    tokenizer = build_char_tokenizer()
    a, b = verdict_token_ids(tokenizer, ["A", "B"])
    assert tokenizer.decode([a, b]) == "AB"
    with pytest.raises(ValueError, match="rm.verdict_tokens"):
        verdict_token_ids(tokenizer, ["Yes", "No"])


def test_verdict_formats_map_each_verdict_to_its_token():
    tokenizer = build_char_tokenizer()
    a, b = tokenizer.convert_tokens_to_ids(["A", "B"])
    y, n = tokenizer.convert_tokens_to_ids(["y", "n"])
    assert VERDICT_FORMATS.names() == ["ab", "yes_no"]
    assert verdict_ids_by_verdict(tokenizer, ["A", "B"], "ab") == (a, b)  # the first token names A as the winner
    # yes_no asks "is B better?": "n" (no) means A wins, "y" (yes) means B wins
    assert verdict_ids_by_verdict(tokenizer, ["y", "n"], "yes_no") == (n, y)
    with pytest.raises(KeyError, match="verdict format 'letters'"):
        verdict_ids_by_verdict(tokenizer, ["A", "B"], "letters")


def test_render_fills_every_slot_once_so_a_response_may_contain_slot_text():
    # a code answer that mentions the slots: each response lands as written, never rewritten by a later slot
    out = render("{prompt}|A:{a}|B:{b}", "fill {a} and {b}", "x = '{b}' + '{prompt}'", "print('{a}')")
    assert out == "fill {a} and {b}|A:x = '{b}' + '{prompt}'|B:print('{a}')"
    assert render("{b}{a}{b}", "p", "{b}", "{a}") == "{a}{b}{a}"
