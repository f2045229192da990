import pytest
import torch
from omegaconf import OmegaConf

from pairwise_rl.models.factory import (TINY_ARCHS, build_tiny_causal_lm, init_policy, init_random_policy,
                                        load_causal_lm, load_scalar_model, load_tokenizer)
from pairwise_rl.models.tokenizer import build_char_tokenizer

TINY = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_position_embeddings=64)


@pytest.mark.parametrize("arch", TINY_ARCHS.names())
def test_tiny_models_save_and_reload_through_from_pretrained(arch, tmp_path):
    tokenizer = build_char_tokenizer()
    model = build_tiny_causal_lm(OmegaConf.create({"arch": arch, **TINY}), tokenizer, seed=0)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = load_causal_lm(str(tmp_path))
    ids = torch.tensor([tokenizer("sort: 1 2 =")["input_ids"]])
    assert torch.allclose(model(ids).logits, reloaded(ids).logits, atol=1e-6)
    assert load_tokenizer(str(tmp_path))("1 2")["input_ids"] == tokenizer("1 2")["input_ids"]

    # The scalar-head model (BT RM / critic) keeps the backbone of the causal LM it starts from.
    scalar = load_scalar_model(str(tmp_path))
    assert scalar.score.out_features == 1
    backbone = dict(reloaded.base_model.named_parameters())
    for name, param in scalar.base_model.named_parameters():
        assert torch.equal(param, backbone[name]), name


def test_init_policy_is_deterministic_per_seed():
    cfg = OmegaConf.create({"name_or_path": None, "chat_template": False, "tiny": {"arch": "llama", **TINY}})
    (a, _), (b, _), (c, _) = init_policy(cfg, 0), init_policy(cfg, 0), init_policy(cfg, 1)
    pa, pb, pc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_a_random_policy_keeps_a_pretrained_models_architecture_and_drops_its_weights(tmp_path):
    tokenizer = build_char_tokenizer()
    pretrained = build_tiny_causal_lm(OmegaConf.create({"arch": "llama", **TINY}), tokenizer, seed=5)
    pretrained.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    cfg = OmegaConf.create({"name_or_path": str(tmp_path), "tokenizer": None, "chat_template": False,
                            "dtype": "float32", "trust_remote_code": False,
                            "tiny": {"arch": "gpt2", **TINY}})  # tiny: not read here
    (a, tok), (b, _), (c, _) = (init_random_policy(cfg, 0), init_random_policy(cfg, 0), init_random_policy(cfg, 1))
    assert type(a) is type(pretrained) and a.config.hidden_size == 32 and a.config.num_hidden_layers == 1
    assert tok("1 2")["input_ids"] == tokenizer("1 2")["input_ids"]  # the model's own tokenizer
    pa, pb, pc, pp = (dict(m.named_parameters())["model.layers.0.mlp.up_proj.weight"] for m in (a, b, c, pretrained))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc) and not torch.equal(pa, pp)  # seeded, and not pretrained


def test_missing_hub_model_fails_with_a_local_path_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="could not load 'no-such-org/no-such-model'") as caught:
        load_causal_lm("no-such-org/no-such-model")
    assert "model.name_or_path=/path/to" in caught.value.fix
