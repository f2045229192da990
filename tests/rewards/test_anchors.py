"""Each anchor strategy returns what it promises."""

import pytest
import torch
from omegaconf import OmegaConf

from pairwise_rl.data.records import Prompt
from pairwise_rl.models.factory import build_tiny_causal_lm
from pairwise_rl.models.generation import generate
from pairwise_rl.models.tokenizer import build_char_tokenizer
from pairwise_rl.rewards.anchors import (ANCHORS, BEST_OF_N_SELECTIONS, AnchorContext, best_of_n_selection,
                                        build_anchor)
from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.rewards.generative import GenerativeReward

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


def sft_samples(ctx):
    """The n SFT samples best_of_n draws (row i * n + j: sample j of prompt i), and the prompts repeated alike."""
    repeated = [p.prompt for p in PROMPTS for _ in range(4)]
    return repeated, generate(ctx.reference_policy, ctx.tokenizer, repeated, max_new_tokens=6, max_prompt_tokens=64,
                              generator_seed=ctx.seed).texts


@pytest.mark.parametrize("by", ["auto", "score", "tournament"])
def test_best_of_n_on_a_bt_rm_is_the_highest_scoring_of_n_sft_samples(ctx, by):
    """For BT, mean_k sigmoid(r_j - r_k) rises with r_j, so the tournament's winner is the top score too."""
    ctx.best_of_n_by = by
    chosen = build_anchor("best_of_n").anchors(PROMPTS, ctx)
    repeated, samples = sft_samples(ctx)
    scores = ctx.reward_model.score(repeated, samples).view(3, 4)
    assert len(set(samples)) > 4  # the samples differ, so the choice is not trivial
    for i, anchor in enumerate(chosen):
        assert anchor == samples[i * 4 + int(scores[i].argmax())]


@pytest.fixture
def generative_ctx(ctx, tmp_path):
    judge_dir = tmp_path / "judge"
    ctx.reference_policy.save_pretrained(judge_dir)  # an untrained but not degenerate judge
    ctx.tokenizer.save_pretrained(judge_dir)
    ctx.reward_model = GenerativeReward.from_pretrained(str(judge_dir), max_prompt_tokens=64, max_response_tokens=24,
                                                        template="{prompt}\nA:{a}\nB:{b}\nBetter:",
                                                        verdict_tokens=["A", "B"])
    return ctx


def test_best_of_n_on_a_pairwise_judge_ranks_by_round_robin_or_by_beating_the_sft_greedy_answer(generative_ctx):
    ctx = generative_ctx
    repeated, samples = sft_samples(ctx)
    judge = ctx.reward_model
    # Tournament by hand: sample j's mean P(j beats k) over the 3 others, each P from compare (both orders).
    wins = torch.zeros(3, 4)
    for i in range(3):
        for j in range(4):
            others = [k for k in range(4) if k != j]
            p = judge.compare([repeated[i * 4]] * 3, [samples[i * 4 + j]] * 3, [samples[i * 4 + k] for k in others])
            wins[i, j] = p.mean()
    # Score by hand: P(sample beats the frozen SFT policy's greedy answer), n calls per prompt.
    greedy_answers = greedy(ctx.reference_policy, ctx)
    beats_greedy = judge.compare(repeated, samples, [g for g in greedy_answers for _ in range(4)]).view(3, 4)
    expected = {"tournament": wins, "score": beats_greedy, "auto": wins}  # auto: no scalar score -> tournament
    for by, strength in expected.items():
        ctx.best_of_n_by = by
        chosen = build_anchor("best_of_n").anchors(PROMPTS, ctx)
        assert chosen == [samples[i * 4 + int(strength[i].argmax())] for i in range(3)], by
    assert best_of_n_selection("auto", judge) is BEST_OF_N_SELECTIONS.get("tournament")
    assert BEST_OF_N_SELECTIONS.names() == ["score", "tournament"]
    with pytest.raises(KeyError, match="best_of_n selection"):
        best_of_n_selection("vote", judge)
