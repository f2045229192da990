"""The same seed and config give identical metrics on CPU, run twice (every stage, every number)."""

from pathlib import Path

from pairwise_rl.cli import run
from pairwise_rl.pipeline import stage_metrics
from pairwise_rl.files import read_json
from pairwise_rl.stages.pipeline import SECONDS_PER_ITERATION


def _numbers(result):
    """Every number of the pipeline's table but its wall-clock column."""
    return {setup: {k: v for k, v in row.items() if k != SECONDS_PER_ITERATION}
            for setup, row in result["results"].items()}


def test_two_runs_of_the_same_pipeline_agree_exactly(make_cfg, tmp_path):
    results = []
    for attempt in ("first", "second"):
        cfg = make_cfg("debug=fast", "experiment=pairwise_vs_bt", "seed=3")
        cfg.paths.cache_dir = str(tmp_path / attempt / "artifacts")  # nothing shared: both build everything
        cfg.paths.output_dir = str(tmp_path / attempt / "run")
        run(cfg)
        results.append(read_json(Path(cfg.paths.output_dir) / "result.json"))
    first, second = results
    assert _numbers(first) == _numbers(second)
    assert all(row[SECONDS_PER_ITERATION] > 0 for name, row in first["results"].items() if name != "sft (start)")
    for setup, stages in first["artifacts"].items():
        for stage, path in stages.items():
            other = second["artifacts"][setup][stage]
            assert stage_metrics(path) == stage_metrics(other), (setup, stage)
