"""pipeline.parallel_setups: setups built side by side give the same numbers as one after another, at the same
thread count; setups that need one RM share it through the cache's lock; the plan follows the machine."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pairwise_rl.checks import ConfigError
from pairwise_rl.cli import run
from pairwise_rl.config import validate
from pairwise_rl.files import read_json
from pairwise_rl.pipeline import COMPLETE, stage_metrics
from pairwise_rl.stages.pipeline import SECONDS_PER_ITERATION
from pairwise_rl.stages.setup_pool import plan, schedule

# Three setups, two of them on one BT RM: two workers build the BT and the generative RM at once, and the third
# setup waits for the BT RM instead of building it again.
SETUPS = ("pipeline.setups=[{name: traditional, rm: bt, ppo: standard}, {name: pairwise_rl, rm: generative, "
          "ppo: pairwise}, {name: bt_anchor, rm: bt, ppo: pairwise}]")


def _numbers(result):
    return {setup: {k: v for k, v in row.items() if k != SECONDS_PER_ITERATION}
            for setup, row in result["results"].items()}


def _interval(path):
    done = read_json(Path(path) / COMPLETE)
    return done["finished_at"] - done["seconds"], done["finished_at"]


def test_setups_built_side_by_side_equal_one_after_another_and_share_an_rm(make_cfg, tmp_path):
    results = {}
    for workers in (1, 2):
        cfg = make_cfg("debug=fast", "experiment=pairwise_vs_bt", SETUPS, "trainer.num_threads=1",
                       f"pipeline.parallel_setups={workers}", "seed=2")
        cfg.paths.cache_dir = str(tmp_path / f"workers{workers}" / "artifacts")  # nothing shared: both build all
        cfg.paths.output_dir = str(tmp_path / f"workers{workers}" / "run")
        run(cfg)
        results[workers] = read_json(Path(cfg.paths.output_dir) / "result.json")
    alone, together = results[1], results[2]
    assert _numbers(alone) == _numbers(together)
    for setup, stages in together["artifacts"].items():
        for stage, path in stages.items():
            assert stage_metrics(path) == stage_metrics(alone["artifacts"][setup][stage]), (setup, stage)
    arts = together["artifacts"]
    assert arts["traditional"]["rm"] == arts["bt_anchor"]["rm"]  # one BT RM, built once for both setups
    assert len(list(Path(arts["traditional"]["rm"]).parent.glob("rm-*"))) == 2
    # the two RMs were built at the same time, by different processes
    (start_bt, end_bt), (start_gen, end_gen) = (_interval(arts[s]["rm"]) for s in ("traditional", "pairwise_rl"))
    assert start_bt < end_gen and start_gen < end_bt


def test_each_worker_trains_with_its_share_of_trainer_num_threads(make_cfg, tmp_path):
    """trainer.num_threads=2 split over two setups: the shared SFT computes with 2 threads, each setup's RM with 1
    (a Trainer built in a worker keeps the worker's share, not the run's count)."""
    cfg = make_cfg("debug=fast", "experiment=pairwise_vs_bt", "trainer.num_threads=2", "pipeline.parallel_setups=2",
                   "pipeline.setups=[{name: bt, rm: bt, last_stage: rm}, {name: gen, rm: generative, last_stage: rm}]")
    run(cfg)
    threads = {p.name: read_json(p / COMPLETE)["torch_threads"] for p in Path(cfg.paths.cache_dir).glob("*-*")}
    assert [n for name, n in threads.items() if name.startswith("sft-")] == [2]
    assert sorted(n for name, n in threads.items() if name.startswith("rm-")) == [1, 1]


def _cfg(**trainer):
    return OmegaConf.create({"pipeline": {"parallel_setups": trainer.pop("parallel", "auto")},
                             "trainer": {"accelerator": "cpu", "strategy": "auto", "num_threads": 0, **trainer}})


def test_auto_runs_one_setup_per_thread_on_a_cpu_and_one_at_a_time_elsewhere():
    assert plan(_cfg(num_threads=2), setups=2) == (2, 1)
    assert plan(_cfg(num_threads=4), setups=2) == (2, 2)      # never more workers than setups
    assert plan(_cfg(num_threads=8), setups=3) == (3, 2)      # 3 x 2 <= 8
    assert plan(_cfg(num_threads=1), setups=5) == (1, 1)      # a job of a side-by-side sweep: one thread, one setup
    assert plan(_cfg(num_threads=8, accelerator="gpu"), setups=4) == (1, 8)
    assert plan(_cfg(num_threads=4, strategy="fsdp"), setups=4) == (1, 4)
    assert plan(_cfg(num_threads=4, parallel=1), setups=4) == (1, 4)
    assert plan(_cfg(num_threads=4, parallel=3), setups=2) == (2, 2)


def test_distinct_rms_start_first():
    assert schedule(["bt", "bt", "gen", "bt", "gen"]) == [0, 2, 1, 4, 3]
    assert schedule(["bt", "gen"]) == [0, 1]
    assert schedule([]) == []


@pytest.mark.parametrize("value, message", [(0, "whole number >= 1"), ("many", "whole number >= 1"),
                                            (-1, "whole number >= 1")])
def test_a_bad_parallel_setups_is_a_config_error(make_cfg, value, message):
    cfg = make_cfg("experiment=pairwise_vs_bt", f"pipeline.parallel_setups={value}")
    with pytest.raises(ConfigError, match=f"pipeline.parallel_setups: .*{message}"):
        validate(cfg)


def test_parallel_setups_above_one_is_refused_with_a_multi_process_strategy(make_cfg):
    cfg = make_cfg("experiment=pairwise_vs_bt", "trainer=fsdp", "pipeline.parallel_setups=2")
    with pytest.raises(ConfigError, match="pipeline.parallel_setups: 2 with trainer.strategy=fsdp"):
        validate(cfg)
