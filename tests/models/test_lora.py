"""LoRA through peft: adapters only train, and an export merges them into a plain HF model that computes the same
function as the adapted one."""

import pytest
import torch
from omegaconf import OmegaConf

from pairwise_rl.models.factory import build_tiny_causal_lm, load_causal_lm, load_scalar_model
from pairwise_rl.models.lora import adapter_free_view, apply_lora, has_lora, merge_lora_state, trainable_fraction
from pairwise_rl.models.sharding import save_pretrained
from pairwise_rl.models.tokenizer import build_char_tokenizer

LORA = OmegaConf.create({"enabled": True, "r": 2, "alpha": 4.0, "dropout": 0.0,
                         "target_modules": ["q_proj", "v_proj"]})
TINY = OmegaConf.create({"arch": "llama", "hidden_size": 32, "num_layers": 2, "num_heads": 4,
                         "intermediate_size": 64, "max_position_embeddings": 64})


def test_merge_is_w_plus_scaling_times_b_a_by_hand():
    state = {"q.base_layer.weight": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
             "q.base_layer.bias": torch.tensor([0.5, 0.5]),
             "q.lora_A.default.weight": torch.tensor([[1.0, 2.0]]),   # (r=1, in=2)
             "q.lora_B.default.weight": torch.tensor([[1.0], [0.0]]),  # (out=2, r=1)
             "other.weight": torch.tensor([7.0])}
    merged = merge_lora_state(state, scaling=2.0)
    # B @ A = [[1, 2], [0, 0]]; W + 2 (B @ A) = [[3, 4], [0, 1]]
    assert merged["q.weight"].tolist() == [[3.0, 4.0], [0.0, 1.0]]
    assert merged["q.bias"].tolist() == [0.5, 0.5]
    assert set(merged) == {"q.weight", "q.bias", "other.weight"}
    assert "q.lora_A.default.weight" in state  # the input is untouched


def test_only_adapters_train_and_a_disabled_config_changes_nothing():
    tokenizer = build_char_tokenizer()
    plain = build_tiny_causal_lm(TINY, tokenizer, 0)
    assert apply_lora(plain, OmegaConf.merge(LORA, {"enabled": False})) is plain and not has_lora(plain)
    assert trainable_fraction(plain) == 1.0
    model = apply_lora(build_tiny_causal_lm(TINY, tokenizer, 0), LORA)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n for n in trainable)
    assert {n.split(".self_attn.")[1].split(".")[0] for n in trainable} == {"q_proj", "v_proj"}
    # q and v each get A (2 x 32) and B (32 x 2): 128 parameters each, 256 per block, 2 blocks
    assert sum(p.numel() for n, p in model.named_parameters() if p.requires_grad) == 2 * 256


def test_a_scalar_models_fresh_head_trains_with_the_adapters(tmp_path):
    tokenizer = build_char_tokenizer()
    build_tiny_causal_lm(TINY, tokenizer, 0).save_pretrained(tmp_path)
    critic = apply_lora(load_scalar_model(str(tmp_path)), LORA)
    assert critic.score.weight.requires_grad
    assert not critic.model.embed_tokens.weight.requires_grad


def test_export_merges_adapters_into_a_plain_model_with_the_same_outputs(tmp_path):
    tokenizer = build_char_tokenizer()
    model = apply_lora(build_tiny_causal_lm(TINY, tokenizer, 0), LORA)
    with torch.no_grad():  # B starts at zero (an identity update); make the adapters do something
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    ids = torch.tensor([[1, 20, 30, 40, 50]])
    expected = model(ids).logits
    save_pretrained(model, tokenizer, tmp_path / "hf")
    reloaded = load_causal_lm(str(tmp_path / "hf"))
    assert not any("lora" in name for name in reloaded.state_dict())
    assert torch.allclose(reloaded(ids).logits, expected, atol=1e-5)
    assert not torch.allclose(build_tiny_causal_lm(TINY, tokenizer, 0)(ids).logits, expected, atol=1e-3)


@pytest.mark.parametrize("stage", ["ppo"])
def test_lora_runs_every_stage_and_ppo_changes_only_the_adapted_weights(stage, make_cfg):
    from pairwise_rl.cli import run
    from pairwise_rl.pipeline import artifact_dir, stage_metrics

    cfg = make_cfg("debug=fast", f"stage={stage}", "rm=bt", "model.lora.enabled=true",
                   "model.lora.target_modules=[q_proj,v_proj]")
    run(cfg)
    for name in ("sft", "rm", "ppo"):
        assert 0 < stage_metrics(artifact_dir(cfg, name))["trainable_param_fraction"] < 0.2, name
    sft = load_causal_lm(str(artifact_dir(cfg, "sft") / "hf")).state_dict()
    ppo = load_causal_lm(str(artifact_dir(cfg, "ppo") / "hf")).state_dict()
    changed = {name for name in sft if not torch.equal(sft[name], ppo[name])}
    assert changed and all(name.endswith(("q_proj.weight", "v_proj.weight")) for name in changed)


def _adapted(tmp_path):
    """A saved tiny model (the 'SFT policy') and a LoRA policy on it whose adapters do something."""
    tokenizer = build_char_tokenizer()
    build_tiny_causal_lm(TINY, tokenizer, 0).save_pretrained(tmp_path)
    policy = apply_lora(load_causal_lm(str(tmp_path)), LORA)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    return policy, torch.randint(3, len(tokenizer), (3, 9))


def test_the_adapter_free_view_is_the_base_model_sharing_its_weights(tmp_path):
    """PPO's reference under LoRA: no second copy of the base weights, and exactly the SFT policy's function."""
    policy, ids = _adapted(tmp_path)
    view = adapter_free_view(policy)
    sft = load_causal_lm(str(tmp_path))
    with torch.no_grad():
        assert torch.equal(view(ids).logits, sft(ids).logits)
        assert not torch.allclose(policy(ids).logits, sft(ids).logits)  # the adapters are on in the policy
    q = policy.model.layers[0].self_attn.q_proj
    assert view.model.layers[0].self_attn.q_proj.weight is q.base_layer.weight  # the same tensor, not a copy
    assert view.lm_head.weight is view.model.embed_tokens.weight is policy.model.embed_tokens.weight
    view_ids = {id(p) for p in view.parameters()}
    assert view_ids <= {id(p) for p in policy.parameters()}
    # a training step of the policy changes only the adapters: the view (the reference) stays the SFT policy
    opt = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.1)
    policy(ids).logits.sum().backward()
    assert all(p.grad is None for p in policy.parameters() if not p.requires_grad)  # no gradient for the base
    opt.step()
    with torch.no_grad():
        assert torch.equal(view(ids).logits, sft(ids).logits)


def test_the_view_refuses_a_model_whose_base_trains(tmp_path):
    policy, _ = _adapted(tmp_path)
    with pytest.raises(ValueError, match="needs a model with LoRA"):
        adapter_free_view(load_causal_lm(str(tmp_path)))
    policy.model.embed_tokens.weight.requires_grad_(True)
    with pytest.raises(ValueError, match="embed_tokens.weight trains"):
        adapter_free_view(policy)
