"""Sampling: masks, the logprobs read while sampling, and sampling knobs that mean what the config says."""

import pytest
import torch
from omegaconf import OmegaConf

from pairwise_rl.algos.ppo import token_logprobs
from pairwise_rl.models.factory import build_tiny_causal_lm
from pairwise_rl.models.generation import ChosenTokenLogprobs, generate, response_mask_from_ids
from pairwise_rl.models.heads import hidden_states, lm_head_logits
from pairwise_rl.models.tokenizer import build_char_tokenizer

TINY = dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=96)
PROMPTS = ["sort: 3 1 2 =", "add: 12 + 7 =", "reverse: 9 8 7 6 5 ="]  # different lengths: real left padding


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer()


def _model(tokenizer, arch="llama"):
    return build_tiny_causal_lm(OmegaConf.create({"arch": arch, **TINY}), tokenizer, seed=0).eval()


def test_response_mask_keeps_tokens_up_to_the_first_eos():
    ids = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]])
    assert response_mask_from_ids(ids, eos_id=2).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def test_recorder_reads_each_chosen_token_from_the_step_before():
    # Two steps over a 3-token vocabulary: step 0 scores [0, log 3, 0] chose token 1; step 1 scores uniform chose 2.
    recorder = ChosenTokenLogprobs()
    recorder(torch.tensor([[9]]), torch.tensor([[0.0, torch.log(torch.tensor(3.0)), 0.0]]))
    recorder(torch.tensor([[9, 1]]), torch.zeros(1, 3))
    logprobs = recorder.finish(torch.tensor([[9, 1, 2]]))
    # p(1) = 3 / (1 + 3 + 1) = 0.6 ; p(2) = 1/3
    assert torch.allclose(logprobs, torch.log(torch.tensor([[0.6, 1 / 3]])), atol=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_read_while_sampling_equal_a_fresh_forward(tokenizer, arch, temperature):
    """PPO's old logprobs come from the sampling pass: they must be the model's own distribution (no temperature,
    no warpers) at every response token, the same numbers a full forward pass gives."""
    model = _model(tokenizer, arch)
    out = generate(model, tokenizer, PROMPTS * 4, max_new_tokens=12, max_prompt_tokens=64, temperature=temperature,
                   generator_seed=0, return_logprobs=True)
    sequences = torch.cat([out.prompt_ids, out.response_ids], 1)
    mask = torch.cat([out.prompt_mask, out.response_mask], 1)
    prompt_len = out.prompt_ids.shape[1]
    with torch.no_grad():
        hidden = hidden_states(model, sequences, mask)[:, prompt_len - 1:-1]
        forward = token_logprobs(lm_head_logits(model, hidden), out.response_ids)
    real = out.response_mask.bool()
    assert out.logprobs.shape == out.response_ids.shape
    assert real.sum() > 40 and (out.logprobs[~real] == 0).all()
    assert torch.allclose(out.logprobs[real], forward[real], atol=1e-5)


def test_greedy_logprobs_are_the_argmax_tokens(tokenizer):
    model = _model(tokenizer)
    out = generate(model, tokenizer, PROMPTS, max_new_tokens=8, max_prompt_tokens=64, greedy=True,
                   return_logprobs=True)
    assert (out.logprobs[out.response_mask.bool()] < 0).all()
    assert out.logprobs.shape == out.response_ids.shape
    # Greedy picks the most likely token, so its logprob is the largest of the full forward's distribution.
    sequences = torch.cat([out.prompt_ids, out.response_ids], 1)
    mask = torch.cat([out.prompt_mask, out.response_mask], 1)
    with torch.no_grad():
        hidden = hidden_states(model, sequences, mask)[:, out.prompt_ids.shape[1] - 1:-1]
        best = torch.log_softmax(lm_head_logits(model, hidden).float(), -1).max(-1).values
    real = out.response_mask.bool()
    assert torch.allclose(out.logprobs[real], best[real], atol=1e-5)


def test_top_k_zero_samples_the_whole_vocabulary(tokenizer):
    """top_k=0 disables the filter (HF's global default would be 50: half of the 100-token character vocabulary),
    and a positive top_k is honoured."""
    model = _model(tokenizer)
    head = model.get_output_embeddings()
    torch.nn.init.zeros_(head.weight)
    # Nearly uniform but strictly ordered logits, so a top-k filter has a well-defined k best.
    offsets = torch.linspace(0.0, 1e-3, head.out_features)
    head.register_forward_hook(lambda module, inputs, output: output + offsets)
    out = generate(model, tokenizer, ["sort: 1 2 ="] * 64, max_new_tokens=20, max_prompt_tokens=64, top_k=0,
                   generator_seed=0)
    seen = set(out.response_ids[out.response_mask.bool()].tolist())
    assert len(seen) > 80  # ~100 distinct of 100 tokens in ~1,000 uniform draws; top-50 would cap it at 50
    capped = generate(model, tokenizer, ["sort: 1 2 ="] * 64, max_new_tokens=20, max_prompt_tokens=64, top_k=10,
                      generator_seed=0)
    assert len(set(capped.response_ids[capped.response_mask.bool()].tolist())) <= 10


def test_checkpoint_generation_defaults_do_not_change_sampling(tokenizer):
    """Instruct checkpoints ship repetition_penalty / top_k in generation_config.json. PPO must sample from the
    distribution its logprobs describe, whatever a transformers version does with those defaults."""
    model = _model(tokenizer)
    plain = generate(model, tokenizer, PROMPTS, max_new_tokens=10, max_prompt_tokens=64, generator_seed=3,
                     return_logprobs=True)
    model.generation_config.repetition_penalty = 2.0
    model.generation_config.top_k = 3
    shipped = generate(model, tokenizer, PROMPTS, max_new_tokens=10, max_prompt_tokens=64, generator_seed=3,
                       return_logprobs=True)
    assert torch.equal(plain.response_ids, shipped.response_ids)
    assert torch.equal(plain.logprobs, shipped.logprobs)


@pytest.mark.parametrize("greedy", [False, True])
def test_static_kv_cache_samples_what_the_growing_cache_samples(tokenizer, monkeypatch, greedy):
    """The static cache is a speed choice only: same seed, same tokens, same logprobs as the dynamic cache."""
    import pairwise_rl.models.generation as generation

    model = _model(tokenizer)
    assert generation.uses_static_cache(model)
    outs = {}
    for static in (True, False):
        monkeypatch.setattr(generation, "uses_static_cache", lambda m, static=static: static)
        outs[static] = generate(model, tokenizer, PROMPTS * 6, max_new_tokens=12, max_prompt_tokens=64,
                                greedy=greedy, generator_seed=3, return_logprobs=True)
    assert torch.equal(outs[True].response_ids, outs[False].response_ids)
    assert outs[True].texts == outs[False].texts
    assert torch.allclose(outs[True].logprobs, outs[False].logprobs, atol=1e-5)


def test_a_call_computes_the_same_whatever_ran_on_the_model_before(tokenizer):
    """A static cache is sized for its own call: an earlier call with longer prompts (as a held-out evaluation
    before training is) must not change the next call's numbers, or a resumed run, which skips that evaluation,
    drifts from an uninterrupted one."""
    from pairwise_rl.models.generation import uses_static_cache

    model = _model(tokenizer)
    assert uses_static_cache(model)  # the path under test
    kwargs = dict(max_new_tokens=6, max_prompt_tokens=48, greedy=False, generator_seed=3, return_logprobs=True)
    fresh = generate(model, tokenizer, PROMPTS, **kwargs)
    generate(model, tokenizer, [p * 3 for p in PROMPTS], **{**kwargs, "generator_seed": 4})  # longer prompts
    after = generate(model, tokenizer, PROMPTS, **kwargs)
    assert torch.equal(fresh.response_ids, after.response_ids)
    assert torch.equal(fresh.logprobs, after.logprobs)  # bit for bit, not just close
