"""Every config option and every experiment file composes; bad configs fail early and name the key."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from pairwise_rl.config import ConfigError, validate
from tests.conftest import ROOT, compose_config

CONF = ROOT / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in {"hydra", "experiment", "sweep"})


def group_options():
    for group in GROUPS:
        for option in sorted((CONF / group).glob("*.yaml")):
            yield group, option.stem


def test_experiments_directory_is_the_experiment_group():
    assert (CONF / "experiment").resolve() == (ROOT / "experiments").resolve()


# Options that only make sense with other settings: preference datasets train reward models (stage=rm), and the
# generic reader needs a file.
NEEDS = {("data", "hh_rlhf"): ["stage=rm"], ("data", "ultrafeedback"): ["stage=rm"],
         ("data", "jsonl"): ["stage=rm", "data.path=prefs.jsonl"]}


@pytest.mark.parametrize("group,option", list(group_options()))
def test_every_group_option_composes_and_validates(group, option, tmp_path):
    cfg = compose_config([f"{group}={option}", *NEEDS.get((group, option), [])], tmp_path)
    validate(cfg)


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml")))
def test_every_experiment_composes_and_validates(experiment, tmp_path):
    cfg = compose_config([f"experiment={experiment}"], tmp_path)
    validate(cfg)


def test_sweeps_directory_is_the_sweep_group_and_every_sweep_sets_multirun_params():
    assert (CONF / "sweep").resolve() == (ROOT / "sweeps").resolve()
    sweeps = sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml"))
    assert sweeps == ["kl_target", "local", "rm_x_ppo_groups", "seeds", "slurm"]
    for sweep in sweeps:
        cfg = _compose_with_hydra([f"sweep={sweep}"])
        assert str(cfg.hydra.mode) == "RunMode.MULTIRUN", sweep
        # slurm and local pick the launcher, not the points
        assert cfg.hydra.sweeper.params or sweep in ("slurm", "local"), sweep


def _compose_with_hydra(overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def test_slurm_sweep_selects_the_submitit_launcher_and_keeps_the_experiment_sweep():
    cfg = _compose_with_hydra(["experiment=seeds", "sweep=slurm", "trainer=gpu", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.max_num_timeout == 3
    assert launcher.nodes == cfg.trainer.num_nodes and launcher.tasks_per_node == cfg.trainer.devices
    assert str(cfg.hydra.sweeper.params.seed) == "0,1,2"  # the experiment's seeds, now as SLURM jobs


def test_every_yaml_key_is_documented():
    """Each key line in a group file carries a comment (the YAML is the user's documentation)."""
    undocumented = []
    for path in CONF.rglob("*.yaml"):
        if path.parent.name == "hydra":
            continue
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
                continue
            previous = lines[number - 1].strip() if number else ""
            is_section = stripped.endswith(":")
            if "#" not in line and not previous.startswith("#") and not is_section and path.parent.name != "debug":
                undocumented.append(f"{path.relative_to(CONF)}:{number + 1}: {stripped}")
    assert not undocumented, "\n".join(undocumented)


def test_unknown_key_fails_at_composition_naming_the_key(tmp_path):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(["sft.max_stepz=3"], tmp_path)
    assert "max_stepz" in str(info.value.__cause__ or info.value)


def test_wrong_type_fails_at_composition_naming_the_key(tmp_path):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(["ppo.clip_ratio=wide"], tmp_path)
    assert "clip_ratio" in str(info.value.__cause__ or info.value)


@pytest.mark.parametrize("override,key", [
    ("sft.lr=-1e-3", "sft.lr"),
    ("ppo.clip_ratio=0", "ppo.clip_ratio"),
    ("data.digits.tau.add=0", "data.digits.tau.add"),
    ("data.digits.corruption_rate=1.5", "data.digits.corruption_rate"),
    ("rm.mode=ranking", "rm.mode"),
    ("ppo.reward=dpo", "ppo.reward"),
    ("ppo.advantage=vtrace", "ppo.advantage"),
    ("ppo.advantage=grpo", "ppo.advantage"),  # one sample per prompt: no group to normalise over
    ("ppo.reward=group", "ppo.reward"),
    ("ppo.samples_per_prompt=0", "ppo.samples_per_prompt"),
    ("ppo.anchor=oracle", "ppo.anchor"),
    ("ppo.kl.estimator=k9", "ppo.kl.estimator"),
    ("ppo.rollout_logprobs=cache", "ppo.rollout_logprobs"),
    ("ppo.reward_transform=sqrt", "ppo.reward_transform"),
    ("ppo.rm_precision=half", "ppo.rm_precision"),
    ("ppo.reward_transform=logit", "ppo.reward_transform"),  # ppo=standard's scalar reward is no probability
    (("ppo=pairwise", "ppo.order_average=median"), "ppo.order_average"),
    ("ppo.kl.horizon=soon", "ppo.kl.horizon"),
    ("ppo.kl.horizon=10", "ppo.kl.horizon"),  # 0.2 x 64 samples / 10 > 1: one update would zero beta
    ("ppo.minibatch_size=48", "ppo.minibatch_size"),
    ("stage=deploy", "stage"),
    (("rm=generative", "rm.template='{prompt} {a}'"), "rm.template"),  # the generative mode checks its keys
    (("rm=generative", "rm.verdict_tokens=[A,A]"), "rm.verdict_tokens"),
    (("rm=generative", "rm.verdict_format=letters"), "rm.verdict_format"),
    (("stage=pipeline", "pipeline.setups=[{name: g, rm: generative, ppo: pairwise}]", "rm.verdict_format=letters"),
     r"pipeline.setups.0 \(g\): rm.verdict_format"),  # ... wherever a setup uses it
    ("rm.init=pretrained", "rm.init"),
    (("ppo.anchor=best_of_n", "ppo.best_of_n_by=vote"), "ppo.best_of_n_by"),  # the anchor checks its keys
    (("ppo.anchor=best_of_n", "ppo.best_of_n=0"), "ppo.best_of_n"),
    ("ppo.critic_lr=0", "ppo.critic_lr"),  # gae (the default) learns a critic
    ("logger.mode=sometimes", "logger.mode"),
    ("model.tiny.num_heads=3", "model.tiny.hidden_size"),
    ("stage=compare", "compare.dir"),
    (("stage=compare", "compare.dir=x", "compare.layout=sideways"), "compare.layout"),
])
def test_out_of_range_or_inconsistent_values_fail_validation_naming_the_key(override, key, tmp_path):
    cfg = compose_config(list(override) if isinstance(override, tuple) else [override], tmp_path)
    with pytest.raises(ConfigError, match=f"^{key}:"):
        validate(cfg)


def test_each_part_checks_its_own_keys_beside_its_registry_entry(tmp_path):
    """The selected task, RM mode, reward form, estimator and anchor, the cache and the logger each have a
    check_config beside their registry entry, called directly here on a composed config (no validate())."""
    from pairwise_rl.algos.advantages import ADVANTAGE_ESTIMATORS
    from pairwise_rl.cache import check_config as check_cache
    from pairwise_rl.rewards import RM_MODES
    from pairwise_rl.rewards.anchors import ANCHORS
    from pairwise_rl.rewards.ppo_reward import PPO_REWARDS
    from pairwise_rl.tasks.base import TASKS
    from pairwise_rl.training import check_logger_config

    hh = ["data=hh_rlhf", "data.path=x.jsonl"]
    cases = [  # (check, a valid config's overrides, the bad value added, the key named)
        (TASKS.get("digits").check_config, [], ["data.digits.min_items=9", "data.digits.max_items=3"],
         "data.digits.min_items"),
        (TASKS.get("preferences").check_config, hh, ["data.overlong=wrap"], "data.overlong"),
        (RM_MODES.get("generative").check_config, [], ["rm.verdict_tokens=[A]"], "rm.verdict_tokens"),
        (RM_MODES.get("gold").check_config, [], hh, "rm.mode"),
        (PPO_REWARDS.get("group").check_config, ["ppo.samples_per_prompt=2"], ["ppo.samples_per_prompt=1"],
         "ppo.reward"),
        (ADVANTAGE_ESTIMATORS.get("rloo").check_config, ["ppo.samples_per_prompt=2"], ["ppo.samples_per_prompt=1"],
         "ppo.advantage"),
        (ADVANTAGE_ESTIMATORS.get("gae").check_config, [], ["ppo.lam=2"], "ppo.lam"),
        (ANCHORS.get("best_of_n").check_config, [], ["ppo.best_of_n=0"], "ppo.best_of_n"),
        (check_cache, [], ["cache.clean=[all]"], "cache.clean"),
        (check_logger_config, [], ["logger.name=tensorboard"], "logger.name"),
    ]
    for check_part, valid, bad, key in cases:
        check_part(compose_config(valid, tmp_path))
        with pytest.raises(ConfigError, match=f"^{key}:"):
            check_part(compose_config(valid + bad, tmp_path))
    # a critic-free estimator does not read the critic's keys
    ADVANTAGE_ESTIMATORS.get("rloo").check_config(compose_config(["ppo.samples_per_prompt=2", "ppo.lam=2"],
                                                                 tmp_path))
