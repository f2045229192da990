"""The artifact cache: keys depend only on what determines a stage; complete artifacts are reused; each records the
code that built it and paths.cache_policy decides what an artifact of other code is worth."""

import json
import logging
import shutil
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from pairwise_rl import provenance
from pairwise_rl.files import read_json
from pairwise_rl.pipeline import (ARTIFACT_STAGES, COMPLETE, ArtifactStage, StaleArtifactError, ensure, keys_except,
                                  config_key, stage_key)


def test_keys_depend_on_determining_sections_only(make_cfg):
    base = make_cfg()
    assert stage_key(base, "sft") == stage_key(make_cfg("trainer.progress_bar=none", "logger=csv"), "sft")
    assert stage_key(base, "sft") != stage_key(make_cfg("sft.lr=2e-3"), "sft")
    assert stage_key(base, "sft") != stage_key(make_cfg("seed=1"), "sft")


def test_keys_except_covers_a_section_but_one_key(make_cfg):
    cfg = make_cfg()
    keys = keys_except(cfg, "data", "data.digits.tau")
    assert "data.digits" not in keys and "data.digits.tau" not in keys and "data.name" in keys
    assert {k for k in keys if k.startswith("data.digits.")} == {f"data.digits.{k}" for k in cfg.data.digits
                                                                  if k != "tau"}
    assert {k.split(".")[1] for k in keys if k.count(".") == 1} == set(cfg.data) - {"digits"}


def test_the_annotator_taus_change_the_pairs_but_not_the_sft_policy(make_cfg):
    """They only label preference pairs: an annotator sweep trains one SFT policy per seed."""
    base, noisier = make_cfg(), make_cfg("data.digits.tau.add=0.5")
    assert stage_key(base, "sft") == stage_key(noisier, "sft")
    assert stage_key(base, "pairs") != stage_key(noisier, "pairs")
    assert stage_key(base, "sft") != stage_key(make_cfg("data.digits.corruption_rate=0.2"), "sft")


def test_ensure_builds_once_then_serves_the_cache(make_cfg, monkeypatch):
    calls = []

    def fake_run(cfg: DictConfig, ctx) -> dict:
        calls.append(ctx.dir)
        (ctx.dir / "artifact.txt").write_text("x")
        return {"value": 1.0}

    monkeypatch.setitem(ARTIFACT_STAGES._items, "sft", ArtifactStage("sft", (), ("sft",), fake_run))
    cfg = make_cfg()
    first = ensure(cfg, "sft")
    second = ensure(cfg, "sft")
    assert first == second and len(calls) == 1
    assert (first / COMPLETE).exists() and (first / "config.yaml").exists()


def test_an_interrupted_artifact_is_rebuilt_not_served(make_cfg, monkeypatch):
    calls = []

    def failing_then_ok(cfg, ctx):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("killed")
        return {}

    monkeypatch.setitem(ARTIFACT_STAGES._items, "sft", ArtifactStage("sft", (), ("sft",), failing_then_ok))
    cfg = make_cfg()
    try:
        ensure(cfg, "sft")
    except RuntimeError:
        pass
    out = ensure(cfg, "sft")
    assert len(calls) == 2 and (out / COMPLETE).exists()


def test_run_tags_carry_the_ablation_axes(make_cfg):
    from pairwise_rl.training import run_tags

    cfg = make_cfg("rm=generative", "ppo=pairwise", "ppo.anchor=best_of_n", "seed=3", "logger.tags=[mine]")
    assert run_tags(cfg, "ppo") == ["mine", "stage=ppo", "rm=generative", "seed=3", "ppo=pairwise", "reward=anchor",
                                    "advantage=gae", "n=1", "anchor=best_of_n"]
    grpo = make_cfg("ppo.reward=group", "ppo.advantage=grpo", "ppo.samples_per_prompt=4")
    assert {"ppo=group+grpo", "reward=group", "advantage=grpo", "n=4", "topology=all_pairs", "fit=mean_win"} <= set(
        run_tags(grpo, "ppo"))
    k_random = make_cfg("ppo.reward=group", "ppo.samples_per_prompt=4", "ppo.group.topology=k_random", "ppo.group.k=1")
    assert "topology=k_random/k=1" in run_tags(k_random, "ppo")
    assert run_tags(cfg, "sft") == ["mine", "stage=sft", "rm=generative", "seed=3"]


# --------------------------------------------------------------------------------------- provenance policies
@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """The running code, as far as provenance can tell, is a copy of the package; edit() changes one of its files."""
    copy = tmp_path / "code" / "pairwise_rl"
    shutil.copytree(Path(provenance.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_ROOT", copy)

    def edit() -> None:
        loss = copy / "algos" / "ppo.py"
        loss.write_text(loss.read_text().replace("def ", "def  ", 1))  # a real edit of the PPO loss module
        provenance.describe.cache_clear()

    yield edit
    provenance.describe.cache_clear()


@pytest.fixture
def counted_sft(monkeypatch):
    builds = []

    def fake_run(cfg, ctx):
        builds.append(ctx.dir)
        return {"value": 1.0}

    monkeypatch.setitem(ARTIFACT_STAGES._items, "sft", ArtifactStage("sft", (), ("sft",), fake_run))
    return builds


def test_every_artifact_records_the_code_that_built_it(make_cfg, package_copy, counted_sft):
    out = ensure(make_cfg(), "sft")
    record = read_json(out / COMPLETE)["built_by"]
    assert record == provenance.current() and record["packages"]["torch"].startswith("2.13.0")
    saved = OmegaConf.load(out / "config.yaml")
    assert saved.built_by.code_version == record["code_version"] and saved.sft.lr == make_cfg().sft.lr


def test_cache_policy_code_rebuilds_after_an_edit(make_cfg, package_copy, counted_sft):
    cfg = make_cfg("paths.cache_policy=code")
    first = ensure(cfg, "sft")
    assert ensure(cfg, "sft") == first and len(counted_sft) == 1
    package_copy()
    second = ensure(cfg, "sft")
    assert second != first and len(counted_sft) == 2  # a new artifact; the old one stays for `stage=cache`
    assert read_json(second / COMPLETE)["built_by"]["code_version"] != read_json(first / COMPLETE)["built_by"][
        "code_version"]


def test_cache_policy_config_serves_the_old_artifact_and_names_both_versions(make_cfg, package_copy, counted_sft,
                                                                            caplog):
    cfg = make_cfg("paths.cache_policy=config")
    first = ensure(cfg, "sft")
    old = provenance.current()["code_version"]
    package_copy()
    with caplog.at_level(logging.WARNING, logger="pairwise_rl.pipeline"):
        assert ensure(cfg, "sft") == first and len(counted_sft) == 1
    warning = caplog.text
    assert str(first) in warning and old in warning and provenance.current()["code_version"] in warning
    assert "package source" in warning


def test_cache_policy_strict_refuses_an_artifact_of_other_code(make_cfg, package_copy, counted_sft):
    cfg = make_cfg("paths.cache_policy=strict")
    first = ensure(cfg, "sft")
    assert ensure(cfg, "sft") == first  # same code: served
    package_copy()
    with pytest.raises(StaleArtifactError, match="paths.cache_policy=strict") as error:
        ensure(cfg, "sft")
    assert str(first) in str(error.value) and "paths.cache_policy=code" in error.value.fix
    assert len(counted_sft) == 1


@pytest.mark.parametrize("later", ["config", "strict"])
def test_the_policies_act_on_artifacts_whichever_policy_built_them(make_cfg, package_copy, counted_sft, caplog,
                                                                   later):
    """Built under the default policy (code), then the code changes: config serves that artifact with the
    warning and strict refuses it -- before, their config-only key looked in another directory and built anew."""
    first = ensure(make_cfg("paths.cache_policy=code"), "sft")
    package_copy()
    cfg = make_cfg(f"paths.cache_policy={later}")
    if later == "strict":
        with pytest.raises(StaleArtifactError, match=str(first)):
            ensure(cfg, "sft")
    else:
        with caplog.at_level(logging.WARNING, logger="pairwise_rl.pipeline"):
            assert ensure(cfg, "sft") == first
        assert str(first) in caplog.text and "package source" in caplog.text
    assert len(counted_sft) == 1
    # and back: what config served is what code now rebuilds (code never serves other code's artifacts)
    assert ensure(make_cfg("paths.cache_policy=code"), "sft") != first and len(counted_sft) == 2


def test_precision_and_packing_are_part_of_the_key(make_cfg, counted_sft):
    """Settings that change a model's numbers without being in a stage's section: each value its own artifact,
    and auto shares the artifact of what it resolves to on this machine."""
    from pairwise_rl import precision

    fp32 = ensure(make_cfg("trainer.precision=32-true"), "sft")
    bf16 = ensure(make_cfg("trainer.precision=bf16-mixed"), "sft")
    unpacked = ensure(make_cfg("trainer.precision=32-true", "trainer.packing=false"), "sft")
    assert len({fp32, bf16, unpacked}) == 3 and len(counted_sft) == 3
    auto = make_cfg("trainer.precision=auto")
    assert ensure(auto, "sft") == {"32-true": fp32, "bf16-mixed": bf16}[precision.resolve(auto).name]
    assert read_json(bf16 / COMPLETE)["numerics"] == {"precision": "bf16-mixed", "packing": True}


def test_a_dataset_s_pairs_do_not_depend_on_precision(make_cfg, tmp_path):
    base = ["data=jsonl", f"data.path={tmp_path / 'prefs.jsonl'}"]
    assert (config_key(make_cfg(*base, "trainer.precision=32-true"), "pairs")
            == config_key(make_cfg(*base, "trainer.precision=bf16-mixed"), "pairs"))
    assert (config_key(make_cfg("trainer.precision=32-true"), "pairs")  # digits pairs are sampled: they do
            != config_key(make_cfg("trainer.precision=bf16-mixed"), "pairs"))


def test_an_artifact_from_before_provenance_counts_as_other_code(make_cfg, counted_sft):
    out = ensure(make_cfg("paths.cache_policy=strict"), "sft")
    marker = read_json(out / COMPLETE)
    del marker["built_by"]
    (out / COMPLETE).write_text(json.dumps(marker))
    with pytest.raises(StaleArtifactError, match="unrecorded"):
        ensure(make_cfg("paths.cache_policy=strict"), "sft")


def test_wandb_config_carries_the_provenance(make_cfg):
    from pairwise_rl.training import flat_config

    flat = flat_config(make_cfg())
    assert flat["built_by.code_version"] == provenance.current()["code_version"]
    assert flat["built_by.packages.transformers"] == "5.23.0" and flat["paths.cache_policy"] == "code"
