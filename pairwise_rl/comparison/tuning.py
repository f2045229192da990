"""Read a tuning sweep (`tune.trial`): each arm's trial selected on validation data, and its test numbers.

Selection reads only the validation column the sweep declared (`tune.select.metric`, a `val ...` column: the RM's
validation pairs, the policy's validation prompts), averaged over the seeds the sweep ran; ties go to the lower trial
(the default one first). The test columns are read only after the choice, to report it: the selected trial's
numbers with 95% intervals over seeds, the untuned trial's (trial 0 with tune.include_default) beside them, and each
metric's range over all the arm's trials, so a reader sees how much tuning moved it and how sensitive the arm is.
Paired differences between arms are taken within each seed, between their selected trials (and between their
untuned trials), as elsewhere in stage=compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from pairwise_rl.errors import DataSourceError
from pairwise_rl.eval.aggregate import mean_ci
from pairwise_rl.tuning.space import describe


@dataclass
class Trial:
    arm: str
    index: int
    point: dict
    rows: Dict[int, Dict[str, Optional[float]]] = field(default_factory=dict)  # {seed: the setup's table row}

    def mean(self, metric: str) -> Optional[float]:
        values = [row[metric] for row in self.rows.values() if row.get(metric) is not None]
        return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Selection:
    arm: str
    selected: int
    metric: str
    mode: str
    budget: int
    trials: Dict[int, Trial]

    @property
    def best(self) -> Trial:
        return self.trials[self.selected]


def tuning_config(results: Sequence[dict]) -> Optional[dict]:
    """The runs' tune block (the sweep's own declaration: its metric, mode and budgets); None for no tuning."""
    for result in results:
        if result.get("tuning"):
            return result.get("config", {}).get("tune")
    return None


def collect(results: Sequence[dict]) -> Dict[str, Dict[int, Trial]]:
    """{arm: {trial: Trial with a row per seed}} from the runs' `tuning` records (tune.trial jobs; a tune.pick
    job's `<arm>_tuned` rows are reruns, not trials of a sweep, and are left to the ordinary tables)."""
    arms: Dict[str, Dict[int, Trial]] = {}
    for result in results:
        tuning = result.get("tuning", {})  # sorted by name in result.json: the experiment's order is `setups`
        for setup in sorted(tuning, key=lambda s: (result.get("setups", []) + [s]).index(s)):
            info = tuning[setup]
            if setup != info["arm"] and not setup.startswith(info["arm"] + " ["):
                continue  # `<arm>_tuned` of tune.pick
            trial = arms.setdefault(info["arm"], {}).setdefault(
                info["trial"], Trial(info["arm"], info["trial"], info["point"]))
            trial.rows[result["seed"]] = result["results"][setup]
    return {arm: dict(sorted(trials.items())) for arm, trials in arms.items()}


def check_complete(trials: Dict[str, Dict[int, Trial]], budgets: Dict[str, int], seeds: Sequence[int],
                   allow_unequal: bool) -> None:
    """Every arm has its whole budget on every seed, and the budgets are equal unless the sweep allowed otherwise:
    selecting among the trials that happened to finish would give one arm a smaller search."""
    missing = [f"{arm} trial {t} seed {s}" for arm, budget in budgets.items() for t in range(budget)
               for s in seeds if s not in trials.get(arm, {}).get(t, Trial(arm, t, {})).rows]
    if missing:
        raise DataSourceError(f"compare.dir: the tuning sweep is incomplete: {len(missing)} runs missing "
                              f"({', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''})").with_fix(
            "rerun the same multirun command (finished trials are served from the artifact cache, not rerun), or "
            "compare a directory that holds every trial")
    if len(set(budgets.values())) > 1 and not allow_unequal:
        raise DataSourceError(f"compare.dir: the arms were tuned with unequal budgets {budgets}").with_fix(
            "rerun with equal budgets (tune.budget), or the sweep must say tune.allow_unequal_budgets=true")


def select(trials: Dict[int, Trial], metric: str, mode: str, budget: int) -> Selection:
    """The trial with the best mean validation `metric` over seeds (ties: the lower trial). A trial without the
    metric is an error: it would otherwise drop out of the search silently."""
    scores: Dict[int, float] = {}
    for index, trial in trials.items():
        if index >= budget:
            continue
        score = trial.mean(metric)
        if score is None:
            raise DataSourceError(f"compare.dir: {trial.arm} trial {index} has no {metric!r} (tune.select.metric)"
                                  ).with_fix("rerun the sweep with this code: older runs did not record validation "
                                             "metrics, and eval.validation=false skips the policy's")
        scores[index] = score
    sign = 1.0 if mode == "max" else -1.0
    best = max(scores, key=lambda i: (sign * scores[i], -i))
    return Selection(next(iter(trials.values())).arm, best, metric, mode, budget,
                     {i: t for i, t in trials.items() if i < budget})


def select_arms(results: Sequence[dict]) -> Dict[str, Selection]:
    """{arm: its Selection} for a tuning sweep's runs ({} when the runs are not one)."""
    tune = tuning_config(results)
    if tune is None:
        return {}
    trials = collect(results)
    if not trials:
        return {}
    budgets = {arm: int(tune.get("budgets", {}).get(arm, tune["budget"])) for arm in trials}
    check_complete(trials, budgets, sorted({r["seed"] for r in results}), tune.get("allow_unequal_budgets", False))
    metric, mode = tune["select"]["metric"], tune["select"]["mode"]
    return {arm: select(arm_trials, metric, mode, budgets[arm]) for arm, arm_trials in trials.items()}


def default_trial(selection: Selection) -> Optional[Trial]:
    """Trial 0 when it is the untuned config (tune.include_default), else None."""
    first = selection.trials.get(0)
    return first if first is not None and not first.point else None


def per_seed(trial: Trial, metric: str) -> List[float]:
    return [float(row[metric]) for _, row in sorted(trial.rows.items()) if row.get(metric) is not None]


def spread(selection: Selection, metric: str) -> Optional[Tuple[float, float]]:
    means = [m for m in (t.mean(metric) for t in selection.trials.values()) if m is not None]
    return (min(means), max(means)) if means else None


def summary_rows(selections: Dict[str, Selection], metrics: Sequence[str]) -> Dict[str, Dict[str, object]]:
    """{arm: {column: value}}: the budget, the selected trial and its settings, the validation score, and per test
    metric the tuned and untuned mean_ci and the range of means over trials."""
    rows: Dict[str, Dict[str, object]] = {}
    for arm, selection in selections.items():
        best, untuned = selection.best, default_trial(selection)
        low, high = spread(selection, selection.metric)
        row: Dict[str, object] = {
            "budget (trials)": selection.budget, "seeds": len(best.rows), "selected trial": selection.selected,
            "settings": describe(best.point), f"{selection.metric} (selected)": best.mean(selection.metric),
            f"{selection.metric} over trials": f"{low:.3f} – {high:.3f}"}
        for metric in metrics:
            values = per_seed(best, metric)
            if not values:
                continue
            row[f"{metric}, tuned"] = mean_ci(values)
            if untuned is not None and per_seed(untuned, metric):
                row[f"{metric}, untuned"] = mean_ci(per_seed(untuned, metric))
            lo, hi = spread(selection, metric)
            row[f"{metric} over trials"] = f"{lo:.3f} – {hi:.3f}"
        rows[arm] = row
    return rows


def paired(selections: Dict[str, Selection], pairs: Sequence[Tuple[str, str]], metrics: Sequence[str]
           ) -> Dict[str, Dict[str, dict]]:
    """{'setup − baseline, tuned' / ', untuned': {metric: mean_ci of within-seed differences}}."""
    table: Dict[str, Dict[str, dict]] = {}
    for setup, base in pairs:
        if setup not in selections or base not in selections:
            continue
        for label, pick in (("tuned", lambda s: s.best), ("untuned", default_trial)):
            a, b = pick(selections[setup]), pick(selections[base])
            if a is None or b is None:
                continue
            cells = {}
            for metric in metrics:
                diffs = [float(a.rows[s][metric]) - float(b.rows[s][metric]) for s in sorted(set(a.rows) & set(b.rows))
                         if a.rows[s].get(metric) is not None and b.rows[s].get(metric) is not None]
                if diffs:
                    cells[metric] = mean_ci(diffs)
            table[f"{setup} − {base}, {label}"] = cells
    return table


def trial_table(selections: Dict[str, Selection], metrics: Sequence[str]) -> List[Dict[str, object]]:
    """One row per (arm, trial): its settings, the validation score and each metric's mean over seeds."""
    return [{"arm": arm, "trial": i, "selected": i == s.selected, "settings": describe(t.point),
             s.metric: t.mean(s.metric), **{m: t.mean(m) for m in metrics}, "seeds": len(t.rows)}
            for arm, s in selections.items() for i, t in s.trials.items()]


def pick_overrides(selections: Dict[str, Selection]) -> str:
    """The command-line override (shell-quoted) that reruns the selected trials (tune.pick), e.g. on more seeds."""
    return "'++tune.pick={" + ", ".join(f"{arm}: {s.selected}" for arm, s in selections.items()) + "}'"
