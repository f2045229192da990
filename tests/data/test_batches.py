from pairwise_rl.data.batches import ResumeSampler, StepBatches


def test_step_batches_are_a_pure_function_of_seed_and_step():
    make = lambda indices, step: (step, tuple(indices))  # noqa: E731
    a = StepBatches(100, 8, 50, seed=3, make_batch=make)
    b = StepBatches(100, 8, 50, seed=3, make_batch=make)
    assert [a[s] for s in range(50)] == [b[s] for s in reversed(range(50))][::-1]
    assert a[0] != StepBatches(100, 8, 50, seed=4, make_batch=make)[0]
    assert len(set(a[7][1])) == 8  # without replacement
    assert len(StepBatches(3, 8, 1, seed=0, make_batch=make)[0][1]) == 8  # with replacement when data is small


def test_resume_sampler_starts_at_the_restored_step_but_reports_the_full_length():
    sampler = ResumeSampler(10, start=6)
    assert list(sampler) == [6, 7, 8, 9] and len(sampler) == 10
