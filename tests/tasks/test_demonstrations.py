import random

from pairwise_rl.tasks.demonstrations import corrupt, demonstrations
from pairwise_rl.tasks.digits import gold_score, sample_problems


def test_corruption_always_changes_the_answer():
    rng = random.Random(0)
    for problem in sample_problems("train", 400, seed=0):
        assert gold_score(problem.prompt, corrupt(problem, problem.target, rng)) < 1.0


def test_corruption_rate_and_determinism():
    problems = sample_problems("train", 3000, seed=0)
    demos = demonstrations(problems, corruption_rate=0.4, seed=7)
    corrupted = sum(gold_score(d.prompt, d.reference) < 1.0 for d in demos) / len(demos)
    assert abs(corrupted - 0.4) < 0.03
    assert demos == demonstrations(problems, corruption_rate=0.4, seed=7)
    assert all(gold_score(d.prompt, d.reference) == 1.0 for d in demonstrations(problems[:100], 0.0, seed=7))
