"""Chat-formatted prompts (model.chat_template=true): the template is applied once, without a second
begin-of-text token, and the setting travels with the saved tokenizer to every later stage."""

import pytest

from pairwise_rl.data.encoding import encode_prompts, encode_sft_batch
from pairwise_rl.models.chat import format_prompt, prompt_token_ids, use_chat_prompts, uses_chat_prompts
from pairwise_rl.models.factory import load_tokenizer
from pairwise_rl.models.tokenizer import build_char_tokenizer

# A chat template in the Jinja style of hub tokenizers, writing its own begin-of-text token.
TEMPLATE = ("<bos>{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}[assistant]{% endif %}")


def chat_tokenizer():
    tokenizer = build_char_tokenizer()
    tokenizer.chat_template = TEMPLATE
    return use_chat_prompts(tokenizer, True)


def test_prompts_become_a_user_turn_with_the_assistant_header():
    tokenizer = chat_tokenizer()
    assert format_prompt(tokenizer, "sort: 3 1 2 =") == "<bos>[user]sort: 3 1 2 =\n[assistant]"
    (ids,) = prompt_token_ids(tokenizer, ["ab"])
    assert ids.count(tokenizer.bos_token_id) == 1  # the template's, not a second one from the tokenizer
    assert tokenizer.decode(ids, skip_special_tokens=False) == "<bos>[user]ab\n[assistant]"


def test_without_the_flag_prompts_are_unchanged():
    tokenizer = build_char_tokenizer()
    assert not uses_chat_prompts(tokenizer)
    assert format_prompt(tokenizer, "ab") == "ab"
    assert prompt_token_ids(tokenizer, ["ab"]) == [tokenizer("ab")["input_ids"]]


def test_encoders_use_the_chat_prompt_and_the_response_ends_with_eos():
    tokenizer = chat_tokenizer()
    batch = encode_prompts(tokenizer, ["ab", "abc"], max_tokens=64)
    assert tokenizer.decode(batch["input_ids"][1], skip_special_tokens=False) == "<bos>[user]abc\n[assistant]"
    sft = encode_sft_batch(tokenizer, ["ab"], ["12"], 64, 8)
    text = tokenizer.decode(sft["input_ids"][0], skip_special_tokens=False)
    assert text == "<bos>[user]ab\n[assistant]12<eos>"


def test_the_setting_survives_save_pretrained(tmp_path):
    chat_tokenizer().save_pretrained(tmp_path)
    reloaded = load_tokenizer(str(tmp_path))
    assert uses_chat_prompts(reloaded)
    assert format_prompt(reloaded, "x") == "<bos>[user]x\n[assistant]"


def test_a_tokenizer_without_a_template_is_refused():
    with pytest.raises(ValueError, match="model.chat_template=true"):
        use_chat_prompts(build_char_tokenizer(), True)
