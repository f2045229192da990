"""stage=pipeline: sft -> rm -> ppo -> evaluate (independent judge) for each configured setup, from one shared
SFT policy.

Each setup is an RM mode with a PPO reward form and advantage estimator; the artifact cache makes the setups share the SFT policy (and an RM
when two setups use the same mode). The run ends with one comparison table and a result.json in the Hydra run
directory, which is what a multirun comparison reads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf

from pairwise_rl import hardware, provenance
from pairwise_rl.comparison.figures import write_plots
from pairwise_rl.comparison.load import START_ROW
from pairwise_rl.files import read_json, write_json
from pairwise_rl.eval.judge import judge_kind
from pairwise_rl.eval.report import orient, print_table
from pairwise_rl.pipeline import COMPLETE, built_by, config_key, ensure, stage_metrics
from pairwise_rl.rewards.ppo_reward import PPO_PRESETS, ppo_label
from pairwise_rl.stages import setup_pool
from pairwise_rl.stages.registry import STAGES
from pairwise_rl.stages.common import with_values
from pairwise_rl.tuning.trials import tuned_setups

log = logging.getLogger(__name__)

SUMMARY = {  # column in the table -> (stage, metric)
    "gold (sampled)": ("ppo", "gold_sampled/all"),
    "gold sort": ("ppo", "gold_sampled/sort"),
    "gold reverse": ("ppo", "gold_sampled/reverse"),
    "gold add": ("ppo", "gold_sampled/add"),
    "gold (greedy)": ("ppo", "gold_greedy/all"),
    "KL to SFT": ("ppo", "kl_sampled"),
    "KL target": ("ppo", "kl_target"),           # the adaptive controller's (absent at a fixed beta)
    "beta at the end": ("ppo", "kl_coef_final"),
    "reward (own RM)": ("ppo", "reward_sampled"),  # each setup's own reward: scales differ between setups
    "reward spread (train)": ("ppo", "train_reward_std"),  # mean per-rollout std, before ppo.reward_transform
    "RM accuracy": ("rm", "accuracy"),
    "RM ECE": ("rm", "ece"),
    "RM gold accuracy": ("rm", "gold_accuracy"),          # against the gold ordering (digits), not the noisy labels
    "RM annotator ceiling": ("rm", "annotator_accuracy"),  # the annotator's own probabilities on those labels
    "RM position consistency": ("rm", "position_consistency"),  # generative RMs: same verdict in both orders
    **{f"RM {name} {kind}": ("rm", f"{kind}/{metric}") for kind in ("sort", "reverse", "add")
       for name, metric in (("accuracy", "accuracy"), ("ECE", "ece"))},  # per prompt kind (digits)
    "RM train pairs": ("rm", "train_pairs"),
    # the independent judge (judge.name): never the RM a setup was trained against; sampled responses
    "judge: win vs SFT": ("evaluate", "ppo/win_vs_sft_sampled"),
    "judge: win vs reference": ("evaluate", "ppo/win_vs_reference_sampled"),
    "judge: score": ("evaluate", "ppo/judge_score_sampled"),
    "length (tokens)": ("evaluate", "ppo/length_sampled"),
    "judge rows / iteration": ("ppo", "judge_rows_per_iteration"),
    # validation split (tune.select.metric reads these; the columns above are the test split the tables report)
    "val gold (sampled)": ("ppo", "val/gold_sampled/all"),  # oracle tuning on digits: the gold judge, val prompts
    "val KL to SFT": ("ppo", "val/kl_sampled"),
    "val RM accuracy": ("rm", "val/accuracy"),   # the val pairs' labels
    "val RM NLL": ("rm", "val/nll"),
    "val RM gold accuracy": ("rm", "val/gold_accuracy"),  # digits: against the gold ordering
}
VALIDATION_COLUMNS = tuple(column for column in SUMMARY if column.startswith("val "))
SECONDS_PER_ITERATION = "PPO s / iteration"  # wall time: the one column two identical runs never agree on
KL_REACHED = "KL / target"  # held-out KL over the controller's target: below KL_SHORT the arm stopped short of it
KL_SHORT = 0.5
STAGE_ORDER = ("sft", "rm", "ppo", "evaluate")
LAST_STAGES = STAGE_ORDER[1:]  # pipeline.setups[*].last_stage


def setups(cfg: DictConfig, tuned: bool = True) -> List[Dict[str, object]]:
    """pipeline.setups (or the one the rm and ppo groups make); tuned: as this job's tune.trial / tune.pick runs
    them (tuning/trials.py)."""
    if cfg.pipeline.setups:
        given = [OmegaConf.to_container(s) for s in cfg.pipeline.setups]
    else:
        given = [{"name": f"{cfg.rm.mode}+{ppo_label(cfg.ppo.reward, cfg.ppo.advantage)}", "rm": cfg.rm.mode,
                  "reward": cfg.ppo.reward}]
    return tuned_setups(cfg, given) if tuned else given


def for_setup(cfg: DictConfig, setup) -> DictConfig:
    """The config of one setup: its RM mode, reward form (a preset's or its own), estimator, anchor and any other
    overrides it names; everything else shared."""
    values: Dict[str, object] = {"rm.mode": setup["rm"]}
    if setup.get("ppo"):
        values["ppo.reward"] = PPO_PRESETS[setup["ppo"]]
    for field, key in (("reward", "ppo.reward"), ("advantage", "ppo.advantage"), ("anchor", "ppo.anchor")):
        if setup.get(field):
            values[key] = setup[field]
    values.update(dict(setup.get("overrides") or {}))
    return with_values(cfg, values)


def setup_stages(cfg: DictConfig, setup) -> Tuple[str, ...]:
    """The stages a setup runs: all of them, up to its last_stage (rm: an RM-only point, e.g. of a data-scaling
    curve), and no evaluate without an independent judge (judge.name=none)."""
    stages = STAGE_ORDER if judge_kind(cfg) != "none" else STAGE_ORDER[:-1]
    last = setup.get("last_stage")
    if last in stages:
        stages = stages[:stages.index(last) + 1]
    return stages


def shared_stages(cfg: DictConfig, stages: Tuple[str, ...]) -> Tuple[str, ...]:
    """The artifacts a setup reads that other setups read too: the SFT policy, the preference pairs and, when it is
    evaluated by a trained judge (judge.name=gold_rm), that judge. The pipeline builds them before the setups."""
    shared = ("sft", "pairs") + (("judge",) if "evaluate" in stages and judge_kind(cfg) == "gold_rm" else ())
    return tuple(stage for stage in shared if stage != "sft" or "sft" in stages)


def seconds_per_iteration(ppo_dir: Path, iterations: int) -> Optional[float]:
    """Rollout + update wall time per PPO iteration (validation excluded), from the artifact's COMPLETE.json."""
    seconds = read_json(Path(ppo_dir) / COMPLETE)["phases"].get("rollout+update")
    return None if seconds is None else seconds / iterations


def kl_reached(row: Dict[str, Optional[float]]) -> Optional[float]:
    kl, target = row.get("KL to SFT"), row.get("KL target")
    return None if kl is None or not target else kl / target


def short_of_target(results: Dict[str, Dict[str, Optional[float]]]) -> List[str]:
    """The setups whose held-out KL ended below KL_SHORT of their controller's target: their gold was bought with
    less KL than the others were allowed, so a gold difference is not a matched-KL one."""
    return [name for name, row in results.items()
            if row.get(KL_REACHED) is not None and row[KL_REACHED] < KL_SHORT]


def warn_short_of_target(results: Dict[str, Dict[str, Optional[float]]]) -> None:
    for name in short_of_target(results):
        row = results[name]
        log.warning("%s stopped short of its KL target: held-out KL %.3f of %.3f (%s %.2f < %.2f); compare gold at "
                    "matched KL, not at this target", name, row["KL to SFT"], row["KL target"], KL_REACHED,
                    row[KL_REACHED], KL_SHORT)


def sft_row(metrics: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    """The shared starting policy, as the PPO and evaluate stages measured it (KL to itself is 0)."""
    row = {column: (0.0 if key == "kl_sampled" else metrics["ppo"].get(f"sft/{key}"))
           for column, (stage, key) in SUMMARY.items() if stage == "ppo" and key != "reward_sampled"}
    row.update({column: metrics.get("evaluate", {}).get("sft/" + key.split("/", 1)[1])
                for column, (stage, key) in SUMMARY.items() if stage == "evaluate"})
    return row


@STAGES.register("pipeline")
def pipeline_command(cfg: DictConfig) -> Dict[str, Dict[str, float]]:
    """Run every pipeline.setups entry end to end (SFT, pairs, RM, PPO, evaluate) and tabulate them."""
    results: Dict[str, Dict[str, float]] = {}
    paths: Dict[str, Dict[str, str]] = {}
    first_metrics: Dict[str, Dict[str, float]] = {}
    chosen = setups(cfg)
    jobs = [(for_setup(cfg, setup), setup_stages(cfg, setup)) for setup in chosen]
    for setup_cfg, stages in jobs:  # what every setup reads, built first with all the threads
        for stage in shared_stages(setup_cfg, stages):
            ensure(setup_cfg, stage)
    built = setup_pool.build_setups(jobs, [config_key(c, "rm") for c, _ in jobs], setup_pool.plan(cfg, len(jobs)))
    for setup, (setup_cfg, _), dirs in zip(chosen, jobs, built):
        metrics = {stage: stage_metrics(path) for stage, path in dirs.items()}
        if "ppo" in metrics:
            first_metrics = first_metrics or metrics
        results[setup["name"]] = {column: metrics.get(stage, {}).get(key) for column, (stage, key) in SUMMARY.items()}
        if "ppo" in dirs:
            results[setup["name"]][SECONDS_PER_ITERATION] = seconds_per_iteration(dirs["ppo"],
                                                                                  setup_cfg.ppo.iterations)
            results[setup["name"]][KL_REACHED] = kl_reached(results[setup["name"]])
        paths[setup["name"]] = {stage: str(path) for stage, path in dirs.items()}
    if first_metrics:  # the starting policy as some setup's PPO stage measured it (RM-only runs have none)
        results = {START_ROW: sft_row(first_metrics), **results}
    shown = {name: {column: value for column, value in row.items()
                    if any(r.get(column) is not None for r in results.values())}  # no all-empty rows (no gold)
             for name, row in results.items()}
    print_table(f"{cfg.experiment_name}: held-out test prompts (seed {cfg.seed})", orient(shown))
    warn_short_of_target(results)
    codes = {name: {stage: provenance.code_version(built_by(Path(p))) for stage, p in dirs.items()}
             for name, dirs in paths.items()}
    mixed = sorted({v for stages in codes.values() for v in stages.values()} - {provenance.current()["code_version"]})
    if mixed:
        log.warning("this table mixes code versions: artifacts built by %s, this is %s (paths.cache_policy=%s); "
                    "stage=compare refuses it unless compare.allow_mixed_code=true", ", ".join(mixed),
                    provenance.label(provenance.current()), cfg.paths.cache_policy)
    out = Path(cfg.paths.output_dir)
    # result.json is written with sorted keys: `setups` and `columns` keep the order the experiment gave them.
    result = {"experiment": cfg.experiment_name, "seed": cfg.seed, "results": results, "artifacts": paths,
              "setups": list(results), "columns": list(dict.fromkeys(c for row in results.values() for c in row)),
              "code_versions": codes, "tuning": {s["name"]: s["tuning"] for s in chosen if "tuning" in s},
              "built_by": provenance.current(), "machine": hardware.machine(),
              "config": OmegaConf.to_container(cfg, resolve=True)}
    write_json(out / "result.json", result)
    plots = write_plots([result], out)
    log.info("results: %s", out / "result.json")
    log.info("plots: %s", ", ".join(str(p) for p in plots))
    return results
