"""A tuning sweep's trials inside the pipeline (`tune`): each arm's search space, its budget, and the setups a job
runs for its trial.

An arm is a pipeline setup by name (`traditional`, `pairwise_rl`). A tuning sweep is a Hydra multirun over
`tune.trial` (the basic sweeper: `tune.trial=range(0,6)`); the job for trial t runs every arm at its point t, so
each arm gets the same number of trials by construction, and every trial is an ordinary cached pipeline run (a
killed sweep resumes: finished trials come from the artifact cache). `stage=compare` then selects each arm's trial
on validation data (comparison/tuning.py). `tune.pick` reruns chosen trials without the sweep, e.g. on more seeds:
each picked arm runs as `<arm>_tuned` at its trial's point, beside `<arm>` at its defaults.

Why not the Optuna sweeper (hydra-optuna-sweeper 1.3.0): it installs on this stack (optuna 2.10.1) and runs
in-memory studies, but its sqlite storage fails under SQLAlchemy 2 (so a killed study cannot resume), its search
parameters are global (one study per arm, so no common trial points), it selects on one job's return value (not a
mean over seeds), and its TPE sampler draws its first 10 trials at random (n_startup_trials=10): at this project's
budgets of 4-8 trials per arm it is random search anyway.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence

from omegaconf import DictConfig, OmegaConf

from pairwise_rl.checks import ABSENT, ConfigError, check, one_of
from pairwise_rl.tuning.space import SAMPLERS, Point, describe, parse_space, trial_points

TUNED_SUFFIX = "_tuned"  # tune.pick: the picked trial's setup is `<arm>_tuned`
SELECT_MODES = ("max", "min")
# Keys a search space may not name: they decide which arm it is, what it is evaluated on, or where things go.
FIXED_PREFIXES = ("seed", "tune", "judge", "eval", "compare", "paths", "pipeline", "stage", "experiment_name",
                  "rm.mode", "ppo.reward", "data")


def active(cfg: DictConfig) -> bool:
    return cfg.tune.trial is not None or bool(cfg.tune.pick)


def budgets(cfg: DictConfig) -> Dict[str, int]:
    """{arm: trials}: tune.budgets where given, else tune.budget."""
    return {arm: int(cfg.tune.budgets.get(arm, cfg.tune.budget)) for arm in cfg.tune.spaces}


def arm_points(cfg: DictConfig) -> Dict[str, List[Point]]:
    """{arm: its trials' points, trial 0 first}."""
    tune = cfg.tune
    return {arm: trial_points(parse_space(OmegaConf.to_container(tune.spaces[arm]), f"tune.spaces.{arm}"),
                              budget, tune.sampler, tune.seed, tune.include_default, f"tune.spaces.{arm}")
            for arm, budget in budgets(cfg).items()}


def with_point(setup: Dict[str, Any], name: str, arm: str, trial: int, point: Point) -> Dict[str, Any]:
    """The setup at a trial's point: the point's keys over the setup's own overrides; `tuning` records which."""
    return {**setup, "name": name, "overrides": {**dict(setup.get("overrides") or {}), **point},
            "tuning": {"arm": arm, "trial": trial, "point": point}}


def tuned_setups(cfg: DictConfig, setups: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The setups this job runs. tune.trial=t: each arm at its point t (an arm whose budget is spent sits the job
    out); tune.pick: each picked arm as `<arm>_tuned`, after `<arm>` at its defaults when tune.keep_untuned;
    otherwise the setups as given."""
    if not active(cfg):
        return list(setups)
    points, tune = arm_points(cfg), cfg.tune
    chosen: List[Dict[str, Any]] = []
    for setup in setups:
        arm = setup["name"]
        if arm not in points:
            chosen.append(setup)
        elif tune.trial is not None:
            if tune.trial < len(points[arm]):
                chosen.append(with_point(setup, arm, arm, tune.trial, points[arm][tune.trial]))
        elif arm in tune.pick:
            if tune.keep_untuned:
                chosen.append(setup)
            trial = int(tune.pick[arm])
            chosen.append(with_point(setup, arm + TUNED_SUFFIX, arm, trial, points[arm][trial]))
        else:
            chosen.append(setup)
    return chosen


def check_config(cfg: DictConfig, arms: Sequence[str], check_setup: Callable[[str, Dict[str, Any]], None],
                 setups: Sequence[Dict[str, Any]], validation_columns: Sequence[str],
                 test_columns: Sequence[str]) -> None:
    """The tune block, checked before anything runs: arms are setups, every key exists and may be tuned, every
    range is non-empty, budgets are equal across arms (unless tune.allow_unequal_budgets), the selection metric is
    a validation one, trial / pick are within budget, and every trial's setup is itself a valid config
    (`check_setup(where, setup)`)."""
    tune = cfg.tune
    if not tune.spaces:
        check(not active(cfg), "tune.spaces", "tune.trial / tune.pick need a search space per arm")
        return
    one_of(cfg, "tune.sampler", SAMPLERS.names())
    one_of(cfg, "tune.select.mode", SELECT_MODES)
    metric = tune.select.metric
    if metric in test_columns:
        raise ConfigError(f"tune.select.metric: {metric!r} is measured on the test split, which the comparison "
                          f"reports; select on validation data: one of {list(validation_columns)}")
    one_of(cfg, "tune.select.metric", validation_columns)
    for arm in list(tune.spaces) + list(tune.budgets) + list(tune.pick):
        check(arm in arms, f"tune.spaces.{arm}" if arm in tune.spaces else
              (f"tune.budgets.{arm}" if arm in tune.budgets else f"tune.pick.{arm}"),
              f"no setup is named {arm!r}; the arms are the pipeline's setups: {list(arms)}")
    for arm, space in tune.spaces.items():
        for key in space:
            where = f"tune.spaces.{arm}.{key}"
            check(not any(key == p or key.startswith(p + ".") for p in FIXED_PREFIXES), where,
                  f"cannot be tuned: keys under {list(FIXED_PREFIXES)} decide the arm, its data or its evaluation")
            check(OmegaConf.select(cfg, key, default=ABSENT) is not ABSENT, where, f"unknown key {key!r}")
    sizes = budgets(cfg)
    for arm, size in sizes.items():
        check(size > 0, f"tune.budgets.{arm}" if arm in tune.budgets else "tune.budget",
              f"trials per arm must be > 0, got {size}")
    if len(set(sizes.values())) > 1 and not tune.allow_unequal_budgets:
        raise ConfigError(f"tune.budgets: the arms' budgets differ ({sizes}); an equal tuning budget per arm is what "
                          "makes the comparison fair. Set tune.allow_unequal_budgets=true to run it anyway")
    if tune.trial is not None:
        check(not tune.pick, "tune.pick", "set tune.trial (one trial of the sweep) or tune.pick (chosen trials), "
              "not both")
        check(0 <= tune.trial < max(sizes.values()), "tune.trial",
              f"must be in [0, {max(sizes.values())}) (the budget), got {tune.trial}")
    points = arm_points(cfg)
    for arm, trial in tune.pick.items():
        check(isinstance(trial, int) and 0 <= trial < len(points[arm]), f"tune.pick.{arm}",
              f"a trial of {arm!r} in [0, {len(points[arm])}), got {trial!r}")
    by_name = {setup["name"]: setup for setup in setups}
    for arm, arm_trials in points.items():
        for trial, point in enumerate(arm_trials):
            check_setup(f"tune.spaces.{arm} (trial {trial}: {describe(point)})",
                        with_point(by_name[arm], arm, arm, trial, point))
