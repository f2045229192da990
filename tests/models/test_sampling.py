"""Sampling on low-precision weights: the copy computes the trained model's function (adapters merged), in the
copy's dtype, and follows the trained model whenever its version moves."""

import torch
from omegaconf import OmegaConf

from pairwise_rl.models.factory import build_tiny_causal_lm
from pairwise_rl.models.generation import generate
from pairwise_rl.models.lora import apply_lora
from pairwise_rl.models.sampling import SamplingCopy, plain_copy, wants_copy
from pairwise_rl.models.tokenizer import build_char_tokenizer

LORA = OmegaConf.create({"enabled": True, "r": 2, "alpha": 4.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
TINY = OmegaConf.create({"arch": "llama", "hidden_size": 32, "num_layers": 2, "num_heads": 4,
                         "intermediate_size": 64, "max_position_embeddings": 64})


def _policy():
    tokenizer = build_char_tokenizer()
    model = apply_lora(build_tiny_causal_lm(TINY, tokenizer, 0), LORA)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    return model, tokenizer, torch.randint(3, len(tokenizer), (3, 9))


def test_a_plain_copy_computes_the_adapted_model_without_adapters():
    policy, _, ids = _policy()
    fp32, bf16 = plain_copy(policy, torch.float32), plain_copy(policy, torch.bfloat16)
    assert not any(".lora_" in n for n, _ in fp32.named_parameters()) and bf16.dtype == torch.bfloat16
    assert not any(p.requires_grad for p in bf16.parameters())
    with torch.no_grad():
        expected = policy(ids).logits
        assert torch.allclose(fp32(ids).logits, expected, atol=1e-5)
        assert torch.allclose(bf16(ids).logits.float(), expected, atol=0.1)  # bf16 rounding, same function


def test_the_copy_follows_the_policy_when_its_version_moves():
    policy, _, ids = _policy()
    copies = SamplingCopy(torch.float32)
    first = copies.model(policy, version=0)
    with torch.no_grad():
        before = first(ids).logits.clone()
        for name, param in policy.named_parameters():
            if "lora_A" in name:
                param.add_(0.3)
        assert torch.equal(copies.model(policy, version=0)(ids).logits, before)  # same version: not re-synced
        after = copies.model(policy, version=1)
        assert after is first and torch.allclose(after(ids).logits, policy(ids).logits, atol=1e-5)


def test_bf16_sampling_under_autocast_runs_on_either_weights():
    """The static KV cache takes the weights' dtype: fp32 weights under bf16 autocast use the growing cache (this
    crashed in index_copy_ before), bf16 weights the static one."""
    policy, tokenizer, _ = _policy()
    prompts = ["sort: 3 1 2 =", "add: 12 + 5 ="]
    with torch.autocast("cpu", torch.bfloat16):
        for model in (policy, plain_copy(policy, torch.bfloat16)):
            out = generate(model, tokenizer, prompts, max_new_tokens=6, max_prompt_tokens=32, generator_seed=0,
                           return_logprobs=True)
            assert out.response_ids.shape[0] == 2 and torch.isfinite(out.logprobs).all()


def test_a_copy_is_wanted_only_where_sampling_and_training_dtypes_differ(make_cfg):
    assert wants_copy(make_cfg("trainer.precision=bf16-mixed")) == torch.bfloat16
    assert wants_copy(make_cfg("trainer.precision=32-true")) is None
    assert wants_copy(make_cfg("trainer.precision=bf16-mixed", "trainer=fsdp")) is None  # sharded: no full copy
