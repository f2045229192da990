"""Chat-formatted prompts for instruct models (model.chat_template=true).

An instruct model expects its prompt as a user turn followed by the assistant header, in its own chat format; the
response it generates (or is trained on) then ends with the tokenizer's eos, which for these models is the
end-of-turn token. The generative judge's input is a user turn too, so its verdict is the assistant's first token.

The setting travels with the tokenizer: it is recorded in the tokenizer's config, so every stage that loads a
saved model directory formats prompts the way the model was trained, without being told again.
"""

from __future__ import annotations

from typing import List, Sequence

from transformers import PreTrainedTokenizerBase

CHAT_FLAG = "pairwise_rl_chat_prompts"  # key in tokenizer_config.json (init_kwargs survive save / load)


def use_chat_prompts(tokenizer: PreTrainedTokenizerBase, enabled: bool) -> PreTrainedTokenizerBase:
    if enabled and not tokenizer.chat_template:
        raise ValueError(f"model.chat_template=true, but the tokenizer {tokenizer.name_or_path!r} has no chat "
                         "template; use a chat / instruct model or set model.chat_template=false")
    tokenizer.init_kwargs[CHAT_FLAG] = bool(enabled)
    return tokenizer


def uses_chat_prompts(tokenizer: PreTrainedTokenizerBase) -> bool:
    return bool(tokenizer.init_kwargs.get(CHAT_FLAG, False))


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> str:
    """The prompt as the model reads it: unchanged, or a user turn plus the assistant header."""
    if not uses_chat_prompts(tokenizer):
        return prompt
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


def prompt_token_ids(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]) -> List[List[int]]:
    """Token ids of each prompt as the model reads it, in one batched call. A chat template writes its own
    begin-of-text token, so the tokenizer must not add another."""
    chat = uses_chat_prompts(tokenizer)
    texts = [format_prompt(tokenizer, p) for p in prompts] if chat else list(prompts)
    return tokenizer(texts, add_special_tokens=not chat)["input_ids"]
