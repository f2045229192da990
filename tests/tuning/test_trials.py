"""The tune block: which setups a job runs for its trial or picks, and the config errors that name the key."""

import pytest

from pairwise_rl.checks import ConfigError
from pairwise_rl.config import validate
from pairwise_rl.stages.pipeline import setups
from tests.conftest import compose_config

SPACES = ["++tune.spaces={traditional: {ppo.policy_lr: [1.0e-4, 3.0e-4], rm.lr: [1.0e-3, 3.0e-3]}, "
          "pairwise_rl: {ppo.policy_lr: [1.0e-4, 3.0e-4], ppo.reward_transform: [none, logit]}}"]


def tuned(*overrides):
    cfg = compose_config(["experiment=pairwise_vs_bt", *SPACES, *overrides])
    validate(cfg)
    return cfg


def test_a_trial_job_runs_every_arm_at_its_point_and_records_which():
    cfg = tuned("tune.budget=5", "tune.sampler=grid", "tune.trial=3")
    trad, pair = setups(cfg)
    # grid trial 3 = grid point 2 (trial 0 is the default): the first key's second value, the last key's first
    assert trad["overrides"] == {"ppo.policy_lr": 3.0e-4, "rm.lr": 1.0e-3} and trad["name"] == "traditional"
    assert pair["overrides"] == {"ppo.policy_lr": 3.0e-4, "ppo.reward_transform": "none"}
    assert trad["tuning"] == {"arm": "traditional", "trial": 3, "point": {"ppo.policy_lr": 3.0e-4, "rm.lr": 1.0e-3}}
    default = setups(tuned("tune.budget=5", "tune.sampler=grid", "tune.trial=0"))
    assert [s["overrides"] for s in default] == [{}, {}]  # the untuned config
    assert setups(tuned("tune.budget=5"))[0].get("tuning") is None  # no trial: no tuning


def test_picks_rerun_chosen_trials_beside_the_untuned_arms():
    cfg = tuned("tune.budget=5", "tune.sampler=grid", "++tune.pick={traditional: 4, pairwise_rl: 1}")
    chosen = setups(cfg)
    assert [s["name"] for s in chosen] == ["traditional", "traditional_tuned", "pairwise_rl", "pairwise_rl_tuned"]
    assert chosen[0]["overrides"] == {} and chosen[1]["overrides"] == {"ppo.policy_lr": 3.0e-4, "rm.lr": 3.0e-3}
    assert chosen[3]["tuning"]["trial"] == 1 and chosen[3]["overrides"] == {"ppo.policy_lr": 1.0e-4,
                                                                            "ppo.reward_transform": "none"}
    only = setups(tuned("tune.budget=5", "tune.sampler=grid", "++tune.pick={traditional: 4}", "tune.keep_untuned=false"))
    assert [s["name"] for s in only] == ["traditional_tuned", "pairwise_rl"]


def test_unequal_budgets_need_an_explicit_override_and_a_spent_arm_sits_out():
    with pytest.raises(ConfigError, match=r"tune.budgets: the arms' budgets differ \(\{'traditional': 3, "
                                          r"'pairwise_rl': 5\}\)"):
        tuned("tune.budget=5", "++tune.budgets={traditional: 3}")
    cfg = tuned("tune.budget=5", "++tune.budgets={traditional: 3}", "tune.allow_unequal_budgets=true", "tune.trial=4")
    assert [s["name"] for s in setups(cfg)] == ["pairwise_rl"]


@pytest.mark.parametrize("overrides,message", [
    (["tune.budget=5", "tune.select.metric='gold (sampled)'"],
     r"tune.select.metric: 'gold \(sampled\)' is measured on the test split"),
    (["tune.budget=5", "tune.select.metric='RM accuracy'"], r"tune.select.metric: 'RM accuracy' is measured on the test"),
    (["tune.budget=5", "tune.select.metric='val loss'"], r"tune.select.metric: unknown value 'val loss'"),
    (["tune.budget=5", "++tune.spaces.traditional={ppo.polcy_lr: [1.0e-4]}"],
     r"tune.spaces.traditional.ppo.polcy_lr: unknown key 'ppo.polcy_lr'"),
    (["tune.budget=5", "++tune.spaces.traditional={ppo.policy_lr: []}"],
     r"tune.spaces.traditional.ppo.policy_lr: an empty list of choices"),
    (["tune.budget=5", "++tune.spaces.traditional={ppo.clip_ratio: {low: 0.3, high: 0.1}}"],
     r"tune.spaces.traditional.ppo.clip_ratio: an empty range"),
    (["tune.budget=5", "++tune.spaces.traditional={seed: [1, 2]}"], r"tune.spaces.traditional.seed: cannot be tuned"),
    (["tune.budget=5", "++tune.spaces.traditional={eval.num_prompts: [10, 20]}"],
     r"tune.spaces.traditional.eval.num_prompts: cannot be tuned"),
    (["tune.budget=5", "++tune.spaces.bt_arm={rm.lr: [0.1]}"], r"tune.spaces.bt_arm: no setup is named 'bt_arm'"),
    (["tune.budget=0", "tune.trial=0"], r"tune.budget: trials per arm must be > 0"),
    (["tune.budget=5", "tune.trial=5"], r"tune.trial: must be in \[0, 5\)"),
    (["tune.budget=5", "++tune.pick={traditional: 7}"], r"tune.pick.traditional: a trial of 'traditional' in \[0, 5\)"),
    (["tune.budget=5", "tune.trial=1", "++tune.pick={traditional: 1}"], r"tune.pick: set tune.trial .* or tune.pick"),
    (["tune.budget=5", "tune.sampler=sobol"], r"tune.sampler: unknown value 'sobol'"),
    (["tune.budget=5", "tune.select.mode=best"], r"tune.select.mode: unknown value 'best'"),
    (["tune.budget=5", "tune.trial=1", "eval.validation=false"], r"eval.validation: tune.select.metric="),
])
def test_bad_tuning_configs_name_the_key(overrides, message):
    cfg = compose_config(["experiment=pairwise_vs_bt", *SPACES, *overrides])
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


@pytest.mark.parametrize("spaces,message", [
    ("{traditional: {ppo.policy_lr: [1.0e-4, -1.0]}, pairwise_rl: {ppo.policy_lr: [1.0e-4, 2.0e-4]}}",
     r"tune.spaces.traditional \(trial 2: ppo.policy_lr=-1\) \(traditional\): ppo.policy_lr: must be > 0"),
    ("{traditional: {ppo.reward_transform: [none, logit]}, pairwise_rl: {ppo.reward_transform: [none, logit]}}",
     r"tune.spaces.traditional \(trial 2: ppo.reward_transform=logit\) \(traditional\): ppo.reward_transform: "
     r"logit takes the log-odds of a probability reward"),
])
def test_every_trial_is_a_valid_config_before_anything_runs(spaces, message):
    cfg = compose_config(["experiment=pairwise_vs_bt", f"++tune.spaces={spaces}", "tune.budget=3", "tune.sampler=grid"])
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_no_space_no_trial():
    with pytest.raises(ConfigError, match=r"tune.spaces: tune.trial / tune.pick need a search space per arm"):
        validate(compose_config(["experiment=pairwise_vs_bt", "tune.trial=0"]))
