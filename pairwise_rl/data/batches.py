"""Step-indexed batches: batch `step` is a pure function of (seed, step).

Lightning restarts a dataloader from its beginning when a run resumes mid-epoch. Making the batch a function of
the step, and starting the sampler at the restored step, means a run killed at step k and resumed replays exactly
the batches an uninterrupted run would have seen -- the basis of bit-for-bit resume on CPU.

Batch sizes are global: in a data-parallel run each rank makes its share of the step's batch (every
world_size-th index), so the step budget, the data seen per step and the learning-rate schedule do not depend
on how many processes train.
"""

from __future__ import annotations

import random
from typing import Callable, Generic, Iterator, List, TypeVar

from torch.utils.data import DataLoader, Dataset, Sampler

from pairwise_rl import distributed

B = TypeVar("B")


def step_rng(seed: int, step: int, purpose: str) -> random.Random:
    return random.Random(f"{purpose}/{seed}/{step}")


def step_seed(seed: int, step: int, purpose: str) -> int:
    """A 63-bit integer seed for torch generators, derived like step_rng."""
    return step_rng(seed, step, purpose).getrandbits(63)


class StepBatches(Dataset, Generic[B]):
    """Item `step` = make_batch(indices), indices drawn without replacement from range(num_examples)."""

    def __init__(self, num_examples: int, batch_size: int, num_steps: int, seed: int,
                 make_batch: Callable[[List[int], int], B], purpose: str = "batch"):
        if num_examples < 1:
            raise ValueError("StepBatches needs at least one example")
        self.num_examples, self.batch_size, self.num_steps = num_examples, batch_size, num_steps
        self.seed, self.make_batch, self.purpose = seed, make_batch, purpose

    def __len__(self) -> int:
        return self.num_steps

    def indices(self, step: int) -> List[int]:
        rng = step_rng(self.seed, step, self.purpose)
        if self.batch_size <= self.num_examples:
            return rng.sample(range(self.num_examples), self.batch_size)
        return [rng.randrange(self.num_examples) for _ in range(self.batch_size)]

    def __getitem__(self, step: int) -> B:
        return self.make_batch(distributed.rank_slice(self.indices(step)), step)


def step_loader(num_examples: int, batch_size: int, num_steps: int, seed: int, make_batch: Callable[[List[int], int], B],
                purpose: str, start: int = 0) -> DataLoader:
    """A DataLoader of step-indexed batches starting at `start` (the restored step of a resumed run)."""
    batches = StepBatches(num_examples, batch_size, num_steps, seed, make_batch, purpose)
    return DataLoader(batches, batch_size=None, collate_fn=lambda batch: batch, sampler=ResumeSampler(num_steps, start))


class ResumeSampler(Sampler[int]):
    """Yields steps start..total-1 but reports `total` as its length, matching Lightning's restored progress."""

    def __init__(self, total: int, start: int = 0):
        self.total, self.start = total, start

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.total))

    def __len__(self) -> int:
        return self.total
