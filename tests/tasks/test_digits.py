import random

import pytest

from pairwise_rl.tasks.digits import (KINDS, DigitsProblem, gold_score, mean_by_kind, parse_prompt, sample_problems,
                                      split_of)

SORT = "sort: 4 9 1 7 ="      # target " 1 4 7 9"
REVERSE = "reverse: 4 9 1 7 ="  # target " 7 1 9 4"
ADD = "add: 352 + 71 ="       # target " 423"


def test_prompts_and_targets_follow_the_contract():
    assert DigitsProblem("sort", (4, 9, 1, 7)).prompt == SORT
    assert DigitsProblem("sort", (4, 9, 1, 7)).target == " 1 4 7 9"
    assert DigitsProblem("reverse", (4, 9, 1, 7)).target == " 7 1 9 4"
    assert DigitsProblem("add", (352, 71)).prompt == ADD
    assert DigitsProblem("add", (352, 71)).target == " 423"


@pytest.mark.parametrize("prompt", [SORT, REVERSE, ADD])
def test_parse_prompt_inverts_prompt(prompt):
    assert parse_prompt(prompt).prompt == prompt


@pytest.mark.parametrize("bad", ["", "sort 1 2 =", "mul: 1 2 =", "add: 1 - 2 =", "sort: 1 x ="])
def test_parse_prompt_rejects_non_digits_prompts(bad):
    with pytest.raises(ValueError):
        parse_prompt(bad)


@pytest.mark.parametrize("prompt,response,expected", [
    (SORT, " 1 4 7 9", 1.0),
    (SORT, "1 4 7 9", 1.0),          # leading space is not an item
    (SORT, " 1 4 7", 3 / 4),         # too short: 3 matches over max(3, 4)
    (SORT, " 1 4 7 9 9", 4 / 5),     # too long: 4 matches over max(5, 4)
    (SORT, " 1 4 9 7", 2 / 4),       # swapped tail
    (SORT, " 9 7 4 1", 0.0),
    (SORT, "", 0.0),                 # empty
    (SORT, "   ", 0.0),
    (SORT, " 1 a 7 9", 0.0),         # non-digit item: unparsable
    (SORT, " 14 7 9", 0.0),          # multi-digit item: unparsable
    (REVERSE, " 7 1 9 4", 1.0),
    (REVERSE, " 7 1 9", 3 / 4),
    (REVERSE, " 1 4 7 9", 0.0),
    (ADD, " 423", 1.0),
    (ADD, "423", 1.0),
    (ADD, " 23", 2 / 3),             # aligned from the right: 3 and 2 match, over max(2, 3)
    (ADD, " 1423", 3 / 4),           # too long: 423 matches on the right, over 4
    (ADD, " 413", 2 / 3),
    (ADD, " 42 3", 0.0),             # inner space: unparsable
    (ADD, " -423", 0.0),
    (ADD, "", 0.0),
])
def test_gold_score_hand_cases(prompt, response, expected):
    assert gold_score(prompt, response) == pytest.approx(expected)


def test_gold_score_is_one_for_every_target_and_in_unit_interval():
    rng = random.Random(0)
    for problem in sample_problems("train", 300, seed=1):
        assert gold_score(problem.prompt, problem.target) == 1.0
        noise = " ".join(rng.choice("0123456789") for _ in range(rng.randint(0, 9)))
        assert 0.0 <= gold_score(problem.prompt, noise) <= 1.0


def test_splits_never_overlap_and_are_stable():
    train = {p.prompt for p in sample_problems("train", 600, seed=0)}
    train_other_seed = {p.prompt for p in sample_problems("train", 600, seed=5)}
    val = {p.prompt for p in sample_problems("val", 200, seed=0)}
    test = {p.prompt for p in sample_problems("test", 200, seed=3)}
    assert not (train | train_other_seed) & val and not (train | train_other_seed) & test and not val & test
    assert all(split_of(p) == "test" for p in test)
    assert [p.prompt for p in sample_problems("val", 50, seed=0)] == [p.prompt for p in sample_problems("val", 50, seed=0)]


def test_sample_problems_are_distinct_balanced_and_in_range():
    problems = sample_problems("train", 300, seed=2, min_items=3, max_items=8, max_addend=999)
    assert len({p.prompt for p in problems}) == 300
    assert {k: sum(p.kind == k for p in problems) for k in KINDS} == {"sort": 100, "reverse": 100, "add": 100}
    for p in problems:
        if p.kind == "add":
            assert all(0 <= x <= 999 for x in p.operands)
        else:
            assert 3 <= len(p.operands) <= 8 and all(0 <= x <= 9 for x in p.operands)


def test_sample_problems_fails_clearly_when_space_is_too_small():
    with pytest.raises(ValueError, match="distinct"):
        sample_problems("train", 500, seed=0, kinds=["sort"], min_items=1, max_items=1)


def test_mean_by_kind():
    means = mean_by_kind([SORT, SORT, ADD], [1.0, 0.0, 0.5])
    assert means == {"sort": 0.5, "add": 0.5, "all": 0.5}
