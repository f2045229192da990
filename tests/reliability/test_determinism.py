"""The same seed and config give identical metrics on CPU, run twice (every stage, every number)."""

from pathlib import Path

from pairwise_rl.cli import run
from pairwise_rl.pipeline import stage_metrics
from pairwise_rl.eval.io import read_json


def test_two_runs_of_the_same_pipeline_agree_exactly(make_cfg, tmp_path):
    results = []
    for attempt in ("first", "second"):
        cfg = make_cfg("debug=fast", "experiment=pairwise_vs_bt", "seed=3")
        cfg.paths.cache_dir = str(tmp_path / attempt / "artifacts")  # nothing shared: both build everything
        cfg.paths.output_dir = str(tmp_path / attempt / "run")
        run(cfg)
        results.append(read_json(Path(cfg.paths.output_dir) / "result.json"))
    first, second = results
    assert first["results"] == second["results"]
    for setup, stages in first["artifacts"].items():
        for stage, path in stages.items():
            other = second["artifacts"][setup][stage]
            assert stage_metrics(path) == stage_metrics(other), (setup, stage)
