"""Each anchor strategy returns what it promises."""

import pytest
import torch
from omegaconf import OmegaConf

from pairwise_rl.data.records import Prompt
from pairwise_rl.models.factory import build_tiny_causal_lm
from pairwise_rl.models.generation import generate
from pairwise_rl.models.tokenizer import build_char_tokenizer
from pairwise_rl.rewards.anchors import ANCHORS, AnchorContext, build_anchor
from pairwise_rl.rewards.bt import BTReward

TINY = dict(arch="llama", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_position_embeddings=128)
PROMPTS = [Prompt("sort: 3 1 2 =", " 1 2 3"), Prompt("add: 12 + 30 =", " 42"), Prompt("reverse: 1 2 =", " 2 1")]


@pytest.fixture
def ctx(tmp_path):
    tokenizer = build_char_tokenizer()
    policy = build_tiny_causal_lm(OmegaConf.create(TINY), tokenizer, seed=0)
    reference = build_tiny_causal_lm(OmegaConf.create(TINY), tokenizer, seed=1)
    with torch.no_grad():  # untrained tiny models all babble "====": make the two policies clearly different
        generator = torch.Generator().manual_seed(3)
        for p in reference.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.5)
    policy.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    judge = BTReward.from_pretrained(str(tmp_path), max_prompt_tokens=64, max_response_tokens=24)
    torch.nn.init.normal_(judge.model.score.weight, std=1.0)
    return AnchorContext(policy, reference, tokenizer, judge, max_new_tokens=6, max_prompt_tokens=64,
                         temperature=1.0, best_of_n=4, seed=7)


def greedy(model, ctx):
    return generate(model, ctx.tokenizer, [p.prompt for p in PROMPTS], max_new_tokens=6, max_prompt_tokens=64,
                    greedy=True).texts


def test_registered_strategies():
    assert ANCHORS.names() == ["best_of_n", "policy_greedy", "reference", "sft_greedy"]


def test_reference_anchor_is_the_prompts_reference_and_requires_one(ctx):
    assert build_anchor("reference").anchors(PROMPTS, ctx) == [" 1 2 3", " 42", " 2 1"]
    with pytest.raises(ValueError, match="ppo.anchor=reference"):
        build_anchor("reference").anchors([Prompt("sort: 1 =")], ctx)


def test_sft_greedy_is_the_frozen_policys_greedy_answer_computed_once(ctx, monkeypatch):
    anchor = build_anchor("sft_greedy")
    first = anchor.anchors(PROMPTS, ctx)
    assert first == greedy(ctx.reference_policy, ctx) and first != greedy(ctx.policy, ctx)
    monkeypatch.setattr("pairwise_rl.rewards.anchors.generate", lambda *a, **k: pytest.fail("regenerated"))
    assert anchor.anchors(PROMPTS[::-1], ctx) == first[::-1]  # served from the cache
    restored = build_anchor("sft_greedy")
    restored.load_state_dict(anchor.state_dict())
    assert restored.anchors(PROMPTS, ctx) == first


def test_policy_greedy_follows_the_current_policy(ctx):
    anchor = build_anchor("policy_greedy")
    before = anchor.anchors(PROMPTS, ctx)
    assert before == greedy(ctx.policy, ctx)
    with torch.no_grad():
        for p in ctx.policy.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    assert anchor.anchors(PROMPTS, ctx) == greedy(ctx.policy, ctx) != before


def test_best_of_n_is_the_highest_scoring_of_n_sft_samples(ctx):
    chosen = build_anchor("best_of_n").anchors(PROMPTS, ctx)
    texts = [p.prompt for p in PROMPTS]
    repeated = [t for t in texts for _ in range(4)]
    samples = generate(ctx.reference_policy, ctx.tokenizer, repeated, max_new_tokens=6, max_prompt_tokens=64,
                       generator_seed=ctx.seed).texts
    scores = ctx.reward_model.score(repeated, samples).view(3, 4)
    for i, anchor in enumerate(chosen):
        assert anchor == samples[i * 4 + int(scores[i].argmax())]
