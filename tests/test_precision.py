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
