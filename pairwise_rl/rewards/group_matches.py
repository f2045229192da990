"""Which of a group's samples the judge compares (`ppo.group.topology`) and how the outcomes become rewards
(`ppo.group.fit`): the in-group reward of `ppo.reward=group`, and the best_of_n anchor's tournament.

A group is the n samples of one prompt (rows come in contiguous groups). Matches per group, by topology:

    all_pairs         every unordered pair: n(n-1)/2                          (the round robin)
    circular          each sample against the next, the last against the first: n (1 when n = 2)
    random_reference  one sample drawn per group as the reference, every other sample against it: n-1 (BRPO,
                      arXiv 2506.00103). The reference is rated like every sample, from the matches it played:
                      under mean_win, 1 - the mean of the others' P(beat it) (its own average result, so a
                      strong reference is rewarded as one; no fixed reward that would ignore what it is)
    knockout          a bracket: consecutive survivors meet, P > 1/2 advances (1/2 exactly: the first listed), an
                      odd one out has a bye; judged round by round: n-1 matches in ceil(log2 n) judge calls
    k_random          a random k-regular comparison graph: the samples in a random cyclic order, each matched
                      with the k/2 next ones (and, for odd k, the one opposite): n*k/2 matches, every sample in
                      exactly k of them (k = n-1 is all_pairs)

Order: a judge whose verdict depends on the presentation order (a generative judge with ppo.both_orders=false)
sees each match once, in an order drawn by a fair coin per match, so position bias is noise with mean zero
rather than a fixed advantage for some samples; otherwise each match costs the judge's usual rows (a generative
judge: 2, both orders averaged; BT scores each response once, n rows per group whatever the topology).

Randomness (reference, cyclic order, coins) comes from a generator seeded by the rollout's seed and the group's
own prompt and responses, so a group's matches do not depend on which other groups share its batch, rank or
chunk, and a resumed run draws the same ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from omegaconf import DictConfig

from pairwise_rl.algos.group_rating import bradley_terry, fitted_mean_win, mean_win
from pairwise_rl.checks import check, one_of, positive
from pairwise_rl.registry import Registry
from pairwise_rl.rewards.base import RewardModel

# judge(first, second) -> P(first beats second); (G, m) local indices per group, one call per round
Judge = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class GroupScheme:
    topology: str = "all_pairs"
    k: int = 2
    fit: str = "mean_win"
    ridge: float = 0.01

    @classmethod
    def from_config(cls, ppo: DictConfig) -> "GroupScheme":
        g = ppo.group
        return cls(topology=g.topology, k=g.k, fit=g.fit, ridge=g.ridge)


@dataclass
class Matches:
    first: torch.Tensor    # (G, M) local indices
    second: torch.Tensor   # (G, M)
    p: torch.Tensor        # (G, M) P(first beats second)


@dataclass(frozen=True)
class Topology:
    matches_per_group: Callable[[int, int], int]  # (n, k) -> matches a group of n costs
    # (judge, generators (one per group), n, k) -> the judged matches
    play: Callable[[Judge, List[torch.Generator], int, int], Matches]
    check_config: Callable[[int, int], None] = lambda n, k: None  # (samples_per_prompt, k)


GROUP_TOPOLOGIES: Registry[Topology] = Registry("group topology")


def _static(pairs: Callable[[int, int, torch.Generator], List[Tuple[int, int]]]):
    """A topology whose matches are fixed before judging: one judge call for every group's matches."""
    def play(judge: Judge, generators: List[torch.Generator], n: int, k: int) -> Matches:
        index = torch.tensor([pairs(n, k, g) for g in generators], dtype=torch.long).view(len(generators), -1, 2)
        first, second = index[..., 0], index[..., 1]
        return Matches(first, second, judge(first, second))
    return play


def _all_pairs(n: int, k: int, generator: torch.Generator) -> List[Tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def _circular(n: int, k: int, generator: torch.Generator) -> List[Tuple[int, int]]:
    return [(0, 1)] if n == 2 else [(i, (i + 1) % n) for i in range(n)]


def _random_reference(n: int, k: int, generator: torch.Generator) -> List[Tuple[int, int]]:
    reference = int(torch.randint(n, (1,), generator=generator))
    return [(i, reference) for i in range(n) if i != reference]


def _k_random(n: int, k: int, generator: torch.Generator) -> List[Tuple[int, int]]:
    order = torch.randperm(n, generator=generator).tolist()
    pairs = [(order[t], order[(t + s) % n]) for s in range(1, k // 2 + 1) for t in range(n)]
    if k % 2:
        pairs += [(order[t], order[t + n // 2]) for t in range(n // 2)]
    return pairs


def _check_k(n: int, k: int) -> None:
    check(1 <= k <= n - 1, "ppo.group.k", f"k_random matches each sample against k of the other n - 1 = {n - 1} "
          f"samples of its group (ppo.samples_per_prompt, and eval.samples_per_prompt when above 1): k must be in "
          f"1..{n - 1}, got {k}")
    check(n * k % 2 == 0, "ppo.group.k", f"a k-regular graph on n samples needs n*k even: n = {n}, k = {k}")


def _knockout(judge: Judge, generators: List[torch.Generator], n: int, k: int) -> Matches:
    groups = len(generators)
    alive = torch.arange(n).repeat(groups, 1)                   # (G, survivors), bracket order
    first, second, p = [], [], []
    while alive.shape[1] > 1:
        pairs = alive.shape[1] // 2
        a, b = alive[:, 0:2 * pairs:2], alive[:, 1:2 * pairs:2]
        won = judge(a, b)
        first.append(a), second.append(b), p.append(won)
        winners = torch.where(won >= 0.5, a, b)
        alive = torch.cat([winners, alive[:, 2 * pairs:]], 1)  # a bye joins the next round
    return Matches(torch.cat(first, 1), torch.cat(second, 1), torch.cat(p, 1))


GROUP_TOPOLOGIES.register("all_pairs")(Topology(lambda n, k: n * (n - 1) // 2, _static(_all_pairs)))
GROUP_TOPOLOGIES.register("circular")(Topology(lambda n, k: 1 if n == 2 else n, _static(_circular)))
GROUP_TOPOLOGIES.register("random_reference")(Topology(lambda n, k: n - 1, _static(_random_reference)))
GROUP_TOPOLOGIES.register("knockout")(Topology(lambda n, k: n - 1, _knockout))
GROUP_TOPOLOGIES.register("k_random")(Topology(lambda n, k: n * k // 2, _static(_k_random), _check_k))

# (matches, n, scheme) -> (G, n) ratings in [0, 1] on the round robin's scale
GROUP_FITS: Registry[Callable[[Matches, int, GroupScheme], torch.Tensor]] = Registry("group fit")
GROUP_FITS.register("mean_win")(lambda m, n, scheme: mean_win(m.first, m.second, m.p, n))
GROUP_FITS.register("bradley_terry")(
    lambda m, n, scheme: fitted_mean_win(bradley_terry(m.first, m.second, m.p, n, scheme.ridge)))


def check_config(cfg: DictConfig) -> None:
    """ppo.group.*: names from the registries, k for k_random, a positive ridge (config.validate calls this)."""
    one_of(cfg, "ppo.group.topology", GROUP_TOPOLOGIES.names())
    one_of(cfg, "ppo.group.fit", GROUP_FITS.names())
    positive(cfg, "ppo.group.ridge")
    if cfg.ppo.reward == "group":  # training groups, and the held-out groups evaluation judges the same way
        topology = GROUP_TOPOLOGIES.get(cfg.ppo.group.topology)
        for n in {cfg.ppo.samples_per_prompt, cfg.eval.samples_per_prompt} - {1}:
            topology.check_config(n, cfg.ppo.group.k)


def group_generators(seed: int, prompts: Sequence[str], responses: Sequence[str], n: int) -> List[torch.Generator]:
    """One generator per group, from the seed and the group's own text (never from its place in the batch)."""
    generators = []
    for start in range(0, len(responses), n):
        digest = hashlib.sha256(repr((seed, prompts[start], tuple(responses[start:start + n]))).encode()).digest()
        generators.append(torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1))
    return generators


def match_judge(rm: RewardModel, prompts: Sequence[str], responses: Sequence[str], n: int,
                generators: List[torch.Generator]) -> Judge:
    """The judge over local indices: rows of group g are g*n .. g*n+n-1. An order-sensitive judge sees each match
    once, in a coin-flipped order."""
    scored = rm.match_scorer(prompts, responses)
    offset = (torch.arange(len(generators)) * n).unsqueeze(1)

    def judge(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        a, b = first + offset, second + offset
        if not rm.order_sensitive:
            return scored(a.reshape(-1), b.reshape(-1)).view_as(first).float()
        swap = torch.stack([torch.rand(first.shape[1], generator=g) < 0.5 for g in generators])
        shown_a, shown_b = torch.where(swap, b, a), torch.where(swap, a, b)
        p = scored(shown_a.reshape(-1), shown_b.reshape(-1)).view_as(first).float()
        return torch.where(swap, 1.0 - p, p)

    return judge


def play_group(rm: RewardModel, prompts: Sequence[str], responses: Sequence[str], n: int, scheme: GroupScheme,
               seed: int, generators: Optional[List[torch.Generator]] = None) -> Tuple[torch.Tensor, Matches]:
    """(G * n,) ratings in [0, 1] (row order) and the matches behind them."""
    if n < 2 or len(responses) % n:
        raise ValueError(f"{len(responses)} responses are not whole groups of n = {n} >= 2")
    if generators is None:
        generators = group_generators(seed, prompts, responses, n)
    matches = GROUP_TOPOLOGIES.get(scheme.topology).play(match_judge(rm, prompts, responses, n, generators),
                                                         generators, n, scheme.k)
    return GROUP_FITS.get(scheme.fit)(matches, n, scheme).reshape(-1), matches
