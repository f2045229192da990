"""The real-model configs (Qwen2.5 0.5B / 1.5B Instruct, Llama 3.2 1B Instruct) load through the same factory.

No hub here, so a tiny model of the same architecture is saved with save_pretrained, with a chat template, and
the config is pointed at that directory (model.name_or_path=/local/dir) -- the path a user without hub access
takes with the downloaded weights.
"""

import pytest
import torch

from pairwise_rl.models.chat import uses_chat_prompts
from pairwise_rl.models.factory import build_tiny_causal_lm, init_policy
from pairwise_rl.models.tokenizer import build_char_tokenizer
from tests.models.test_chat import TEMPLATE

REAL = {"qwen2_5_0_5b_instruct": ("Qwen/Qwen2.5-0.5B-Instruct", "qwen2"),
        "qwen2_5_1_5b_instruct": ("Qwen/Qwen2.5-1.5B-Instruct", "qwen2"),
        "llama3_2_1b_instruct": ("meta-llama/Llama-3.2-1B-Instruct", "llama")}


def _save_stand_in(directory, arch: str):
    from omegaconf import OmegaConf

    tokenizer = build_char_tokenizer()
    tokenizer.chat_template = TEMPLATE  # a hub instruct tokenizer ships one; the stand-in gets one too
    tiny = OmegaConf.create({"arch": arch, "hidden_size": 64, "num_layers": 2, "num_heads": 4,
                             "intermediate_size": 128, "max_position_embeddings": 512})
    model = build_tiny_causal_lm(tiny, tokenizer, seed=3)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model


@pytest.mark.parametrize("name", sorted(REAL))
def test_config_names_the_hub_model_and_its_chat_format(name, make_cfg):
    cfg = make_cfg(f"model={name}")
    assert cfg.model.name_or_path == REAL[name][0]
    assert cfg.model.chat_template and cfg.model.dtype == "float32"  # master weights; bf16 is the compute


@pytest.mark.parametrize("name", sorted(REAL))
def test_a_save_pretrained_directory_reloads_through_the_model_config(name, make_cfg, tmp_path):
    saved = _save_stand_in(tmp_path / "model", REAL[name][1])
    cfg = make_cfg(f"model={name}", f"model.name_or_path={tmp_path / 'model'}", "model.dtype=float32")
    model, tokenizer = init_policy(cfg.model, cfg.seed)
    assert type(model) is type(saved)
    assert uses_chat_prompts(tokenizer)
    expected = saved.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())


def test_a_chat_model_trains_the_generative_judge_on_chat_inputs(make_cfg, tmp_path):
    """stage=rm rm=generative through the real config: SFT, pairs and the judge all read chat-formatted inputs,
    as configured."""
    from pairwise_rl.cli import run
    from pairwise_rl.models.factory import load_tokenizer
    from pairwise_rl.pipeline import artifact_dir, stage_metrics

    _save_stand_in(tmp_path / "model", "qwen2")
    cfg = make_cfg("debug=fast", "stage=rm", "rm=generative", "model=qwen2_5_0_5b_instruct",
                   f"model.name_or_path={tmp_path / 'model'}")
    run(cfg)
    rm_dir = artifact_dir(cfg, "rm")
    assert uses_chat_prompts(load_tokenizer(str(rm_dir / "hf")))
    metrics = stage_metrics(rm_dir)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["train_pairs"] > 0
    # the trained judge reads "prompt, A, B" as a user turn; its verdict is the assistant's first token
    from pairwise_rl.rewards import load_reward_model

    judge = load_reward_model(rm_dir / "hf")
    ids = judge._encode(["2+2="], ["4"], ["5"])["input_ids"][0]
    text = judge.tokenizer.decode(ids, skip_special_tokens=False)
    assert text == "<bos>[user]" + cfg.rm.template.replace("{prompt}", "2+2=").replace("{a}", "4").replace(
        "{b}", "5") + "\n[assistant]"
