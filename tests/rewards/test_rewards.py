"""The reward interface on real tiny models: BT compare, the generative judge's verdict and its order averaging."""

import pytest
import torch
from omegaconf import OmegaConf

from pairwise_rl.data.records import Preference
from pairwise_rl.models.factory import build_tiny_causal_lm
from pairwise_rl.models.tokenizer import build_char_tokenizer
from pairwise_rl.rewards import RM_MODES, load_reward_model
from pairwise_rl.rewards.bt import BTReward
from pairwise_rl.rewards.generative import GenerativeReward

TINY = dict(arch="llama", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_position_embeddings=128)
TEMPLATE = "{prompt}\nA:{a}\nB:{b}\nBetter:"
PROMPTS = ["sort: 3 1 2 =", "add: 12 + 30 =", "reverse: 1 2 3 4 5 ="]
GOOD = [" 1 2 3", " 42", " 5 4 3 2 1"]
BAD = [" 3 1", " 41", " 5 4"]


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy")
    tokenizer = build_char_tokenizer()
    build_tiny_causal_lm(OmegaConf.create(TINY), tokenizer, seed=0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def generative(policy_dir, **kw) -> GenerativeReward:
    return GenerativeReward.from_pretrained(policy_dir, max_prompt_tokens=64, max_response_tokens=24,
                                            template=TEMPLATE, verdict_tokens=["A", "B"], **kw)


def test_modes_are_registered():
    assert RM_MODES.names() == ["bt", "generative", "gold"]


def test_gold_judge_scores_with_the_gold_score_and_compares_with_the_annotator_probability(tmp_path):
    from pairwise_rl.rewards.gold import GoldReward
    from pairwise_rl.tasks.oracle import preference_probability

    judge = GoldReward({"sort": 0.05, "add": 0.3, "reverse": 0.1})
    assert judge.score(PROMPTS, GOOD).tolist() == [1.0, 1.0, 1.0]
    assert judge.score(PROMPTS, BAD).tolist() == pytest.approx([0.0, 0.5, 0.4])  # " 3 1" vs " 1 2 3": 0 of 3
    p = judge.compare(PROMPTS, GOOD, BAD)
    assert p.tolist() == pytest.approx([preference_probability(1.0, 0.0, 0.05), preference_probability(1.0, 0.5, 0.3),
                                        preference_probability(1.0, 0.4, 0.1)])
    judge.save(tmp_path)
    assert load_reward_model(tmp_path).tau == judge.tau


def test_bt_compare_is_sigmoid_of_the_score_difference(policy_dir):
    judge = BTReward.from_pretrained(policy_dir, max_prompt_tokens=64, max_response_tokens=24)
    torch.nn.init.normal_(judge.model.score.weight, std=1.0)  # a non-trivial head
    scores_good, scores_bad = judge.score(PROMPTS, GOOD), judge.score(PROMPTS, BAD)
    assert torch.allclose(judge.compare(PROMPTS, GOOD, BAD), torch.sigmoid(scores_good - scores_bad), atol=1e-6)
    assert not torch.allclose(scores_good, scores_bad)


def test_bt_score_pools_the_eos_position_and_ignores_left_padding(policy_dir):
    judge = BTReward.from_pretrained(policy_dir, max_prompt_tokens=64, max_response_tokens=24)
    torch.nn.init.normal_(judge.model.score.weight, std=1.0)
    together = judge.score(PROMPTS, GOOD)
    alone = torch.cat([judge.score([p], [g]) for p, g in zip(PROMPTS, GOOD)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_generative_verdict_matches_a_full_forward_at_the_last_position(policy_dir):
    judge = generative(policy_dir)
    probs = judge.pair_probabilities(PROMPTS[:1], GOOD[:1], BAD[:1])
    text = TEMPLATE.replace("{prompt}", PROMPTS[0]).replace("{a}", GOOD[0]).replace("{b}", BAD[0])
    ids = torch.tensor([judge.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        last = judge.model(ids).logits[0, -1]
    a, b = judge.verdict_ids
    expected = torch.softmax(last[[a, b]], -1)[0]
    assert probs.p_first.item() == pytest.approx(expected.item(), abs=1e-5)


def test_yes_no_judge_reads_p_yes_as_b_wins_and_trains_the_yes_token_where_b_was_chosen(policy_dir):
    template = "{prompt}\nA:{a}\nB:{b}\nB better?"
    judge = GenerativeReward.from_pretrained(policy_dir, max_prompt_tokens=64, max_response_tokens=24,
                                             template=template, verdict_tokens=["y", "n"], verdict_format="yes_no")
    text = template.replace("{prompt}", PROMPTS[0]).replace("{a}", GOOD[0]).replace("{b}", BAD[0])
    with torch.no_grad():
        last = judge.model(torch.tensor([judge.tokenizer(text)["input_ids"]])).logits[0, -1]
    yes, no = judge.tokenizer.convert_tokens_to_ids(["y", "n"])
    p_yes = torch.softmax(last[[yes, no]], -1)[0]
    # P(A wins | GOOD as A, BAD as B) = P(no) = 1 - P(yes | prompt, A, B)
    assert judge.pair_probabilities(PROMPTS[:1], GOOD[:1], BAD[:1]).p_first.item() == pytest.approx(
        1 - p_yes.item(), abs=1e-5)
    # Training: chosen as A -> target "n", chosen as B -> target "y" (swap augmentation gives both rows).
    loss, _ = judge.training_loss([Preference(PROMPTS[0], GOOD[0], BAD[0])])
    swapped = template.replace("{prompt}", PROMPTS[0]).replace("{a}", BAD[0]).replace("{b}", GOOD[0])
    with torch.no_grad():
        last_swapped = judge.model(torch.tensor([judge.tokenizer(swapped)["input_ids"]])).logits[0, -1]
    expected = -(last.log_softmax(-1)[no] + last_swapped.log_softmax(-1)[yes]) / 2
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    before = judge.compare(PROMPTS, GOOD, BAD)
    train(judge, 80)
    after = judge.compare(PROMPTS, GOOD, BAD)  # both orders averaged: P(GOOD beats BAD)
    assert (after > 0.5).all() and (after > before).all()  # it learns the relabelled task


def train(judge, steps: int) -> dict:
    """A few AdamW steps on the GOOD-over-BAD pairs; returns the last step's statistics."""
    optimizer = torch.optim.AdamW(judge.model.parameters(), lr=3e-3)
    pairs = [Preference(p, g, b) for p, g, b in zip(PROMPTS, GOOD, BAD)]
    for _ in range(steps):
        loss, stats = judge.training_loss(pairs)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return stats


def test_both_order_averaging_is_exactly_half_for_identical_responses_even_for_a_position_biased_judge(policy_dir):
    judge = generative(policy_dir, swap_augment=False)  # trained without swaps: learns "A always wins"
    train(judge, 30)
    same = judge.pair_probabilities(PROMPTS, GOOD, GOOD)
    assert (same.p_first > 0.8).all()  # strongly biased towards A ...
    assert torch.equal(same.p, torch.full_like(same.p, 0.5))  # ... yet exactly 0.5 after averaging


def test_generative_training_loss_trains_both_orders(policy_dir):
    judge = generative(policy_dir)
    stats = train(judge, 60)
    probs = judge.pair_probabilities(PROMPTS, GOOD, BAD)
    assert (probs.p_first > 0.5).all() and (probs.p_second < 0.5).all()  # right in both orders
    assert (judge.compare(PROMPTS, GOOD, BAD) > 0.7).all()
    assert stats["verdict_mass"] > 0.9  # the full-vocabulary loss puts the mass on the verdict tokens


@pytest.mark.parametrize("mode", ["bt", "generative"])
def test_saved_reward_models_reload_with_their_settings(mode, policy_dir, tmp_path):
    cls = RM_MODES.get(mode)
    extra = {"template": TEMPLATE, "verdict_tokens": ["A", "B"]} if mode == "generative" else {"margin": 0.5}
    judge = cls.from_pretrained(policy_dir, max_prompt_tokens=64, max_response_tokens=24, **extra)
    judge.save(tmp_path)
    reloaded = load_reward_model(tmp_path)
    assert type(reloaded) is cls and reloaded.spec() == judge.spec()
    assert torch.allclose(reloaded.compare(PROMPTS, GOOD, BAD), judge.compare(PROMPTS, GOOD, BAD), atol=1e-6)


def test_generative_judge_has_no_absolute_score(policy_dir):
    with pytest.raises(TypeError, match="no absolute score"):
        generative(policy_dir).score(PROMPTS, GOOD)


def test_soft_labels_train_as_soft_targets(policy_dir):
    """A pair labelled 0.7 trains towards P(chosen) = 0.7: the loss is the soft cross-entropy of the model's own
    outputs, computed here by hand from its scores / verdict logits."""
    import math

    bt = BTReward.from_pretrained(policy_dir, max_prompt_tokens=64, max_response_tokens=24)
    soft = [Preference(p, g, b, label=0.7) for p, g, b in zip(PROMPTS, GOOD, BAD)]
    with torch.no_grad():
        loss, _ = bt.training_loss(soft)
        r = bt._scores(PROMPTS + PROMPTS, GOOD + BAD).float()
        d = r[:3] - r[3:]
        expected = -(0.7 * torch.nn.functional.logsigmoid(d) + 0.3 * torch.nn.functional.logsigmoid(-d)).mean()
        assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
        hard, _ = bt.training_loss([Preference(p, g, b) for p, g, b in zip(PROMPTS, GOOD, BAD)])
        assert hard.item() == pytest.approx(-torch.nn.functional.logsigmoid(d).mean().item(), abs=1e-5)

    judge = generative(policy_dir)
    with torch.no_grad():
        loss, _ = judge.training_loss(soft[:1])  # both orders: (good, bad) -> A with 0.7; (bad, good) -> B with 0.7
        from pairwise_rl.models.heads import lm_head_logits
        hidden = judge._verdict_hidden([PROMPTS[0]] * 2, [GOOD[0], BAD[0]], [BAD[0], GOOD[0]])
        log_p = lm_head_logits(judge.model, hidden).float().log_softmax(-1)
        a, b = judge.verdict_ids
        expected = -(0.7 * log_p[0, a] + 0.3 * log_p[0, b] + 0.7 * log_p[1, b] + 0.3 * log_p[1, a]) / 2
        assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
        assert math.isfinite(loss.item())


def test_order_average_log_odds_on_a_position_biased_judge(policy_dir):
    """A judge trained without swaps (biased to "A"): log_odds averaging gives sigmoid of the mean log-odds of the
    two orders, the probability average 0.5 + (p1 - p2) / 2; both pick the same winner, log_odds spreads wider."""
    judge = generative(policy_dir, swap_augment=False)
    train(judge, 30)
    by_prob = judge.pair_probabilities(PROMPTS, GOOD, BAD)
    judge.order_average = "log_odds"
    by_logit = judge.pair_probabilities(PROMPTS, GOOD, BAD)
    m1, m2 = torch.logit(by_logit.p_first.double()), torch.logit(by_logit.p_second.double())
    assert torch.allclose(by_logit.p.double(), torch.sigmoid((m1 - m2) / 2), atol=1e-5)
    assert torch.allclose(by_prob.p, 0.5 + 0.5 * (by_prob.p_first - by_prob.p_second), atol=1e-6)
    assert torch.equal(by_prob.p > 0.5, by_logit.p > 0.5)
    assert ((by_logit.p - 0.5).abs() >= (by_prob.p - 0.5).abs() - 1e-6).all()


def test_verdict_margin_is_computed_in_fp32_from_a_bf16_judge(policy_dir):
    """In bf16 weights the two verdict logits are still one fp32 product of the (bf16) hidden state and head rows:
    equal to a float64 product of the same inputs to fp32 precision, under bf16 autocast too."""
    judge = generative(policy_dir, dtype="bfloat16")
    torch.nn.init.normal_(judge.model.get_output_embeddings().weight, std=3.0)  # large logits: bf16 steps show
    hidden = judge._verdict_hidden(PROMPTS, GOOD, BAD)
    rows = judge.model.get_output_embeddings().weight[list(judge.verdict_ids)]
    exact = hidden.double() @ rows.double().T
    exact_margin = (exact[:, 0] - exact[:, 1]).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        margin = judge._verdict_margin(PROMPTS, GOOD, BAD)
    assert margin.dtype == torch.float32
    assert torch.allclose(margin, exact_margin, atol=1e-4)
    bf16 = (hidden @ rows.T)  # the product as it was computed before: rounded to bf16's 8 bits
    assert not torch.allclose(bf16[:, 0].float() - bf16[:, 1].float(), exact_margin, atol=1e-4)


@pytest.mark.parametrize("mode", ["bt", "generative"])
def test_full_precision_judges_in_fp32_inside_a_bf16_autocast_stage(mode, policy_dir):
    """ppo.rm_precision=float32: the judge's forward leaves the stage's bf16 autocast, so inside a bf16-mixed PPO
    stage it gives exactly what it gives in fp32; at the stage's precision it does not."""
    judge = generative(policy_dir) if mode == "generative" else BTReward.from_pretrained(
        policy_dir, max_prompt_tokens=64, max_response_tokens=24)
    head = judge.model.score if mode == "bt" else judge.model.get_output_embeddings()
    torch.nn.init.normal_(head.weight, std=0.5)  # scores / verdict logits large enough for bf16 to round
    fp32 = judge.pair_probabilities(PROMPTS, GOOD, BAD).p
    assert not torch.equal(fp32, torch.full_like(fp32, 0.5))  # a judge with an opinion (std 2 saturates attention)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        at_stage = judge.pair_probabilities(PROMPTS, GOOD, BAD).p
        judge.full_precision = True
        full = judge.pair_probabilities(PROMPTS, GOOD, BAD).p
        scores = judge.score(PROMPTS, GOOD) if mode == "bt" else None
    assert torch.equal(full, fp32)
    assert not torch.equal(at_stage, fp32)
    if scores is not None:
        judge.full_precision = False
        assert torch.equal(scores, judge.score(PROMPTS, GOOD))
