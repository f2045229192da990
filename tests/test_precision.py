"""trainer.precision: what auto resolves to, how the hardware is read, and what a stage computes in."""

import json

import pytest
import torch

from pairwise_rl import precision
from pairwise_rl.config import ConfigError, validate


@pytest.mark.parametrize("device, width, native, expected", [
    ("cpu", 128, True, "32-true"),     # the tiny default: measured slower under bf16 (0.69-0.85x)
    ("cpu", 255, True, "32-true"),
    ("cpu", 256, True, "bf16-mixed"),  # measured 1.44-1.48x
    ("cpu", 576, True, "bf16-mixed"),  # SmolLM2: 1.69-1.78x
    ("cpu", None, True, "bf16-mixed"),  # a hub model whose size is unknown before loading: every one is >= 576
    ("cpu", 576, False, "32-true"),    # no avx512_bf16 / AMX: bf16 would be emulated
    ("cuda", 128, True, "bf16-mixed"),
    ("cuda", 576, False, "32-true"),
])
def test_auto_takes_bf16_where_the_hardware_has_it_and_it_pays(device, width, native, expected):
    assert precision.auto_choice(device, width, native) == expected


def test_native_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert precision.native_bf16("cpu")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx2"}))
    assert not precision.native_bf16("cpu")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")  # torch not using AVX-512
    assert not precision.native_bf16("cpu")


def test_model_width_of_tiny_and_local_models(make_cfg, tmp_path):
    assert precision.model_width(make_cfg().model) == 128
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"hidden_size": 576}))
    assert precision.model_width(make_cfg("model=smollm2_135m_instruct",
                                          f"model.name_or_path={tmp_path / 'm'}").model) == 576
    # a hub id with no local copy: unknown until loaded
    assert precision.model_width(make_cfg("model=qwen2_5_0_5b_instruct",
                                          "model.fetch=null").model) is None


def test_resolve_passes_explicit_settings_and_decides_auto(make_cfg, monkeypatch):
    assert precision.resolve(make_cfg("trainer.precision=bf16-mixed")).bf16
    assert not precision.resolve(make_cfg("trainer.precision=32-true")).bf16
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert precision.resolve(make_cfg()).name == "32-true"  # tiny default, width 128
    assert precision.resolve(make_cfg("model.tiny.hidden_size=256")).name == "bf16-mixed"
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert precision.resolve(make_cfg("model.tiny.hidden_size=256")).name == "32-true"


def test_frozen_models_follow_the_precision(make_cfg):
    assert precision.frozen_dtype(make_cfg("trainer.precision=bf16-mixed")) == "bfloat16"
    assert precision.frozen_dtype(make_cfg("trainer.precision=32-true")) == "float32"


def test_autocast_covers_whatever_runs_inside(make_cfg):
    with precision.autocast(make_cfg("trainer.precision=bf16-mixed")):
        assert precision.autocast_active("cpu") == torch.bfloat16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with precision.autocast(make_cfg("trainer.precision=32-true")):
        assert precision.autocast_active("cpu") is None


def test_an_unknown_precision_is_refused_with_the_key_named(make_cfg):
    with pytest.raises(ConfigError, match="trainer.precision: unknown value '16-mixed'"):
        validate(make_cfg("trainer.precision=16-mixed"))


def test_an_optimiser_step_inside_one_autocast_region_changes_what_the_model_computes():
    """A stage runs whole inside one autocast region; autocast keeps each trainable weight's bf16 cast until that
    region ends. Every optimiser (modules/optim.adamw) drops the casts after its step: before that, a bf16 LoRA RM
    trained for 40 steps came out exactly as it started."""
    from omegaconf import OmegaConf

    from pairwise_rl.models.factory import build_tiny_causal_lm
    from pairwise_rl.models.lora import apply_lora
    from pairwise_rl.models.tokenizer import build_char_tokenizer
    from pairwise_rl.modules.optim import adamw

    tiny = OmegaConf.create({"arch": "llama", "hidden_size": 32, "num_layers": 2, "num_heads": 4,
                             "intermediate_size": 64, "max_position_embeddings": 64})
    lora = OmegaConf.create({"enabled": True, "r": 2, "alpha": 4.0, "dropout": 0.0,
                             "target_modules": ["q_proj", "v_proj"]})
    model = apply_lora(build_tiny_causal_lm(tiny, build_char_tokenizer(), 0), lora)
    ids = torch.randint(3, 30, (2, 8))
    optimizer = adamw(model.parameters(), 1e-2, 0.0)
    with torch.autocast("cpu", torch.bfloat16):
        before = model(ids).logits.detach()
        model(ids, labels=ids).loss.backward()
        optimizer.step()
        after = model(ids).logits.detach()
    assert not torch.equal(before, after)  # the adapters (B starts at zero) moved, and the forward sees it
    with torch.autocast("cpu", torch.bfloat16):
        assert torch.equal(model(ids).logits.detach(), after)  # = a fresh region's casts of the new weights
