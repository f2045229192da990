"""The vocabulary of config checks, shared by config.py (schemas and the checks that cross parts) and by every
part that checks its own keys beside its registry entry (a task, an RM mode, a PPO reward form or estimator, an
anchor, the cache, the logger): `check_config(cfg)` there. It imports only `errors`, so any part can use it.
"""

from __future__ import annotations

from typing import Iterable

from omegaconf import DictConfig, OmegaConf

from pairwise_rl.errors import UserError

ABSENT = object()  # OmegaConf.select's default for a key that does not exist


class ConfigError(UserError, ValueError):
    """A config value is out of range or inconsistent; the message names the key."""

    fix = ("set the key on the command line (key=value) or in its YAML; `pairwise-rl stage=<stage> --cfg job` prints "
           "the composed config")


def check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def positive(cfg: DictConfig, *keys: str) -> None:
    for key in keys:
        value = OmegaConf.select(cfg, key)
        check(value is not None and value > 0, key, f"must be > 0, got {value!r}")


def fraction(cfg: DictConfig, key: str, low_open: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)
    check(ok, key, f"must be in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}")


def one_of(cfg: DictConfig, key: str, names: Iterable[str]) -> None:
    value, names = OmegaConf.select(cfg, key), list(names)
    check(value in names, key, f"unknown value {value!r}; choose one of {names}")
