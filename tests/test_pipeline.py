"""The artifact cache: keys depend only on what determines a stage; complete artifacts are reused."""

from omegaconf import DictConfig

from pairwise_rl.pipeline import ARTIFACT_STAGES, COMPLETE, ArtifactStage, ensure, stage_key


def test_keys_depend_on_determining_sections_only(make_cfg):
    base = make_cfg()
    assert stage_key(base, "sft") == stage_key(make_cfg("trainer.progress_bar=none", "logger=csv"), "sft")
    assert stage_key(base, "sft") != stage_key(make_cfg("sft.lr=2e-3"), "sft")
    assert stage_key(base, "sft") != stage_key(make_cfg("seed=1"), "sft")


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
    assert run_tags(cfg, "ppo") == ["mine", "stage=ppo", "rm=generative", "seed=3", "ppo=pairwise", "anchor=best_of_n"]
    assert run_tags(cfg, "sft") == ["mine", "stage=sft", "rm=generative", "seed=3"]
