"""Bad configs fail before any model is loaded, naming the key."""

import pytest
from hydra.errors import ConfigCompositionException

from pairwise_rl.cli import run
from pairwise_rl.config import ConfigError


@pytest.fixture
def no_model_loads(monkeypatch):
    """Any model construction or load during these tests is a failure: validation must come first.

    Patched on the transformers classes (looked up at call time), not on our functions, which stage modules bind
    at import."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded before the config was validated")

    for cls in (AutoModelForCausalLM, AutoModelForSequenceClassification):
        for name in ("from_pretrained", "from_config"):
            monkeypatch.setattr(cls, name, forbidden)


@pytest.mark.parametrize("overrides,key", [
    (["sft.lr=-1e-3"], "sft.lr"),
    (["rm.lr=0"], "rm.lr"),
    (["ppo.clip_ratio=0"], "ppo.clip_ratio"),
    (["ppo.clip_ratio=-0.2"], "ppo.clip_ratio"),
    (["data.digits.tau.add=0"], "data.digits.tau.add"),
    (["data.digits.tau.sort=-0.1"], "data.digits.tau.sort"),
    (["ppo.minibatch_size=48"], "ppo.minibatch_size"),
    (["ppo.anchor=best_of_three"], "ppo.anchor"),
    (["rm=generative", "rm.template=no slots here"], "rm.template"),
    (["trainer.on_nonfinite=ignore"], "trainer.on_nonfinite"),
    (["data.max_prompt_tokens=480", "rm=generative"], "model.tiny.max_position_embeddings"),
    (["stage=ppo", "data=hh_rlhf", "ppo.anchor=reference", "data.rl_prompts.path=p.jsonl"], "ppo.anchor"),
    (["stage=pipeline", "data=hh_rlhf", "data.task=digits"], "data.task"),
    (["stage=sft", "data.task=preferences"], "data.task"),
    (["paths.cache_policy=sometimes"], "paths.cache_policy"),
    (["ppo.reward=group", "ppo.samples_per_prompt=4", "eval.samples_per_prompt=3"], "eval.batch_size"),
    (["stage=pipeline", "pipeline.setups=[{name: g, rm: bt, reward: group, advantage: rloo}]"],
     r"pipeline.setups.0 \(g\): ppo.reward"),  # a setup's own config is validated too: groups of one
    (["stage=pipeline", "pipeline.setups=[{name: g, rm: bt, ppo: standard, overrides: {ppo.kl.coeff: 0.1}}]"],
     "pipeline.setups.0.overrides"),
    (["ppo.reward=group", "ppo.samples_per_prompt=4", "ppo.group.topology=swiss"], "ppo.group.topology"),
    (["ppo.reward=group", "ppo.samples_per_prompt=4", "ppo.group.topology=k_random", "ppo.group.k=4"],
     "ppo.group.k"),  # k of the n - 1 = 3 others
    (["ppo.reward=group", "ppo.samples_per_prompt=4", "eval.samples_per_prompt=3", "eval.batch_size=12",
      "ppo.group.topology=k_random", "ppo.group.k=1"], "ppo.group.k"),  # held-out groups of 3: n*k odd
    (["ppo.group.fit=elo"], "ppo.group.fit"),
    (["rm.pairs_used=0"], "rm.pairs_used"),
    (["rm.num_train_pairs=100", "rm.pairs_used=101"], "rm.pairs_used"),  # more than were collected
    (["stage=pipeline", "pipeline.setups=[{name: s, rm: bt, last_stage: rm, overrides: {rm.pairs_used: 7000}}]"],
     r"pipeline.setups.0 \(s\): rm.pairs_used"),  # a setup's own cut, against rm.num_train_pairs = 6000
    (["stage=pipeline", "pipeline.setups=[{name: s, rm: bt, ppo: standard, last_stage: sft}]"],
     "pipeline.setups.0.last_stage"),
    (["stage=pipeline", "pipeline.setups=[{name: s, rm: bt, last_stage: ppo}]"], "pipeline.setups.0"),  # no reward
    (["ppo.group.ridge=0"], "ppo.group.ridge"),
    (["stage=cache", "cache.clean=[partial,everything]"], "cache.clean"),
    (["stage=cache", "cache.max_age_days=0"], "cache.max_age_days"),
    (["stage=ppo", "data=hh_rlhf", "data.num_val_prompts=0"], "data.num_val_prompts"),
    (["stage=pipeline", "data=hh_rlhf"], "data.judge_fraction"),  # gold_rm needs pairs the proxies never see
    (["stage=pipeline", "data=hh_rlhf", "judge.name=gold"], "judge.name"),
    (["stage=evaluate", "judge.name=none"], "judge.name"),
    (["stage=judge"], "judge.name"),  # digits: auto is the gold judge, nothing to train
    (["stage=pipeline", "data=hh_rlhf", "data.judge_fraction=0.5", "judge.mode=gold"], "judge.mode"),
    (["stage=ppo", "data=hh_rlhf", "data.val_fraction=0"], "data.test_fraction"),
    (["stage=rm", "data=jsonl"], "data.path"),
    (["stage=rm", "data=hh_rlhf", "data.on_bad_row=ignore"], "data.on_bad_row"),
    (["stage=rm", "data=hh_rlhf", "data.val_fraction=0.5", "data.test_fraction=0.5"], "data.test_fraction"),
])
def test_out_of_range_or_inconsistent_values_fail_naming_the_key(overrides, key, make_cfg, no_model_loads):
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        run(make_cfg(*overrides))


@pytest.mark.parametrize("override,key", [("ppo.kl.coeff=0.1", "coeff"), ("rm.max_steps=many", "max_steps"),
                                          ("trainer.devices_count=2", "devices_count")])
def test_unknown_keys_and_wrong_types_fail_at_composition(override, key, make_cfg):
    with pytest.raises(ConfigCompositionException) as info:
        make_cfg(override)
    assert key in str(info.value.__cause__ or info.value)
