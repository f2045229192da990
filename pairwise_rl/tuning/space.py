"""Search spaces and trial points (`tune.spaces`): which settings each trial of an arm runs with.

A space maps config keys to either a list of choices or a range:

    rm.lr: [3.0e-4, 1.0e-3, 3.0e-3]           choices: one of them
    ppo.policy_lr: {low: 1.0e-5, high: 1.0e-3, log: true}   a float range, log-uniform here
    rm.max_steps: {low: 200, high: 800}        both ends integers: an integer range

Trial points are pure functions of (space, sampler, seed, trial): a job computes its own point from its trial index,
so a multirun over `tune.trial` needs no shared state, a killed sweep resumes from the artifact cache, and raising
the budget keeps every earlier trial's point. With `tune.include_default`, trial 0 is the arm's untuned config
(no key overridden), so the tuned result is never worse on validation than the untuned one.

Samplers (`tune.sampler`):
    random   each key drawn on its own from a stream seeded by (tune.seed, trial, key): two arms that search the same
             key over the same values get the same value at the same trial (common random numbers: their trials are
             paired, so a difference between the arms is not one of luck in the draws)
    grid     the product of every key's choices, in the order the space lists them (the last key varies fastest);
             ranges are refused, and the budget must cover the grid exactly
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Sequence, Union

from pairwise_rl.checks import ConfigError
from pairwise_rl.registry import Registry

Point = Dict[str, Any]  # {config key: value} of one trial


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def draw(self, rng: random.Random) -> Union[int, float]:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return min(max(round(value), self.low), self.high) if self.integer else value


Dimension = Union[List[Any], Range]  # the choices of one key, or its range
Space = Dict[str, Dimension]


def parse_space(raw: Mapping[str, Any], where: str) -> Space:
    """{key: [choices] | {low, high, log}} -> a Space; anything else (an empty list, low >= high, a log range that
    reaches 0, an unknown field) is a ConfigError naming `where.key`."""
    space: Space = {}
    if not raw:
        raise ConfigError(f"{where}: an empty search space; name at least one key, e.g. {{ppo.policy_lr: [1e-4, 3e-4]}}")
    for key, value in raw.items():
        name = f"{where}.{key}"
        if isinstance(value, Mapping):
            space[key] = parse_range(value, name)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            if len(value) == 0:
                raise ConfigError(f"{name}: an empty list of choices")
            if len({repr(v) for v in value}) < len(value):
                raise ConfigError(f"{name}: choices {list(value)} repeat a value (a repeated choice is drawn twice "
                                  "as often)")
            space[key] = list(value)
        else:
            raise ConfigError(f"{name}: give a list of choices or a range {{low, high, log}}, got {value!r}")
    return space


def parse_range(value: Mapping[str, Any], name: str) -> Range:
    unknown = sorted(set(value) - {"low", "high", "log"})
    if unknown or "low" not in value or "high" not in value:
        raise ConfigError(f"{name}: a range is {{low, high, log}}; got fields {sorted(value)}")
    low, high, log = value["low"], value["high"], bool(value.get("log", False))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise ConfigError(f"{name}: low and high must be numbers, got {low!r} and {high!r}")
    if not low < high:
        raise ConfigError(f"{name}: an empty range, low={low} is not below high={high}")
    if log and low <= 0:
        raise ConfigError(f"{name}: a log range needs low > 0, got {low}")
    return Range(low, high, log)


def draw_random(space: Space, seed: int, trial: int) -> Point:
    """One key at a time, each from its own stream: a key's value does not depend on which other keys the space has."""
    point: Point = {}
    for key, dimension in space.items():
        rng = random.Random(f"tune/{seed}/{trial}/{key}")
        point[key] = dimension.draw(rng) if isinstance(dimension, Range) else rng.choice(dimension)
    return point


def grid(space: Space) -> List[Point]:
    keys = list(space)
    return [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]


@dataclass(frozen=True)
class Sampler:
    points: Callable[[Space, range, int, str], List[Point]]  # (space, trial indices, seed, where) -> their points


def _random_points(space: Space, trials: range, seed: int, where: str) -> List[Point]:
    return [draw_random(space, seed, trial) for trial in trials]


def _grid_points(space: Space, trials: range, seed: int, where: str) -> List[Point]:
    count = len(trials)
    ranged = [key for key, dimension in space.items() if isinstance(dimension, Range)]
    if ranged:
        raise ConfigError(f"{where}.{ranged[0]}: tune.sampler=grid needs a list of choices, not a range")
    points = grid(space)
    if len(points) != count:
        raise ConfigError(f"{where}: its grid has {len(points)} points but the budget leaves {count} trials for it; "
                          "make them equal (tune.budget, counting the default trial when tune.include_default) or "
                          "use tune.sampler=random")
    return points


SAMPLERS: Registry[Sampler] = Registry("tune.sampler")
SAMPLERS.register("random")(Sampler(_random_points))
SAMPLERS.register("grid")(Sampler(_grid_points))


def trial_points(space: Space, budget: int, sampler: str, seed: int, include_default: bool, where: str
                 ) -> List[Point]:
    """The `budget` points of one arm, trial 0 first: {} (the untuned config) when include_default, then the
    sampler's points. Random trial t is drawn with index t whichever trials precede it, so raising the budget
    appends points and never changes one."""
    first = 1 if include_default else 0
    drawn = SAMPLERS.get(sampler).points(space, range(first, budget), seed, where)
    return ([{}] if include_default else []) + drawn


def describe(point: Point) -> str:
    """'ppo.policy_lr=0.0003, rm.lr=0.001' (values to 4 significant figures); 'defaults' for the untuned trial."""
    if not point:
        return "defaults"
    return ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in point.items())
