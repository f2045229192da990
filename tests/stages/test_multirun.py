"""A real Hydra multirun (the CLI in a subprocess): the 2x2 as four jobs, then stage=compare over them."""

import csv
import os
import subprocess
import sys

from pairwise_rl.files import read_json
from tests.conftest import ROOT


def test_rm_x_ppo_multirun_then_compare_gives_one_row_per_cell(debug_cache, tmp_path):
    sweep_dir = tmp_path / "multirun"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    common = ["debug=fast", f"paths.cache_dir={debug_cache}"]
    subprocess.run([sys.executable, "-m", "pairwise_rl.cli", "stage=pipeline", "sweep=rm_x_ppo_groups", *common,
                    f"hydra.sweep.dir={sweep_dir}"], cwd=ROOT, env=env, check=True, capture_output=True)
    results = sorted(sweep_dir.glob("*/result.json"))
    assert len(results) == 4
    jobs = {(read_json(r)["config"]["rm"]["mode"], read_json(r)["config"]["ppo"]["reward"]) for r in results}
    assert jobs == {("bt", "scalar"), ("bt", "anchor"), ("generative", "scalar"), ("generative", "anchor")}

    subprocess.run([sys.executable, "-m", "pairwise_rl.cli", "stage=compare", f"compare.dir={sweep_dir}", *common,
                    f"hydra.run.dir={tmp_path / 'compare'}"], cwd=ROOT, env=env, check=True, capture_output=True)
    with open(sweep_dir / "compare.csv") as handle:
        setups = {row["setup"] for row in csv.DictReader(handle)}
    assert setups - {"sft (start)"} == {"bt+standard", "bt+pairwise", "generative+standard", "generative+pairwise"}
    assert (sweep_dir / "rm_reliability.png").stat().st_size > 1000


def test_sweep_local_runs_the_jobs_side_by_side_with_a_share_of_the_cores_each(tmp_path):
    """sweep=local (Hydra's joblib launcher): one job per usable core, each with cores // jobs torch threads, at
    the same time; each job's artifact records the threads it computed with."""
    from pairwise_rl.hardware import threads_per_job, usable_cores

    sweep_dir, cache = tmp_path / "multirun", tmp_path / "artifacts"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    subprocess.run([sys.executable, "-m", "pairwise_rl.cli", "-m", "stage=sft", "seed=0,1", "sweep=local",
                    "debug=fast", "hydra.launcher.n_jobs=2", f"paths.cache_dir={cache}",
                    f"hydra.sweep.dir={sweep_dir}"], cwd=ROOT, env=env, check=True, capture_output=True)
    done = [read_json(p) for p in sorted(cache.glob("sft-*/COMPLETE.json"))]
    assert len(done) == 2 and {d["torch_threads"] for d in done} == {threads_per_job(2)}
    assert all(d["machine"]["usable_cores"] == usable_cores() for d in done)
    (start0, end0), (start1, end1) = ((d["finished_at"] - d["seconds"], d["finished_at"]) for d in done)
    assert start0 < end1 and start1 < end0  # both jobs were building at once
