"""`sweep=slurm` on a real (one-node) SLURM cluster: `make test-slurm`, opt-in, never part of `make test`.

Starts the cluster (tests/slurm/cluster.py: installs slurm-wlm and munge if missing), runs a two-seed sweep as
SLURM jobs through hydra-submitit-launcher and checks every number equals a local multirun's; then a job with a
one-minute limit that SLURM signals, submitit requeues and the same command finishes from the cache and its
checkpoints, again with the local numbers. Stops every daemon it started. About 10 minutes on 2 cores.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.slurm.cluster import PARTITION, OneNodeCluster, install

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(3600)]

# Long enough (PPO 32 iterations, a checkpoint every 4: about 90 s a job on 2 cores) that a one-minute limit
# interrupts a job mid-run; the requeue test checks that it did.
COMMON = ["experiment=pairwise_vs_bt", "debug=fast", "logger=none", "ppo.iterations=32", "ppo.checkpoint_every=4"]
SLURM = ["sweep=slurm", f"hydra.launcher.partition={PARTITION}", "hydra.launcher.cpus_per_task=1",
         "hydra.launcher.mem_gb=4"]
TIMING = ("PPO s / iteration",)  # wall-clock: never equal between two runs


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    install()
    one_node = OneNodeCluster(tmp_path_factory.mktemp("slurm"))
    one_node.start()
    yield one_node
    one_node.stop()
    assert one_node.running() == []


def multirun(cluster, *overrides):
    env = {**os.environ, **cluster.env, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    done = subprocess.run([sys.executable, "-m", "pairwise_rl.cli", "-m", *COMMON, *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def numbers(sweep_dir: Path):
    """{seed: {setup: {metric: value}}} of every result.json below sweep_dir, wall-clock columns left out."""
    out = {}
    for path in sweep_dir.glob("**/result.json"):
        result = json.loads(path.read_text())
        out[result["seed"]] = {setup: {k: v for k, v in metrics.items() if k not in TIMING}
                               for setup, metrics in result["results"].items()}
    return out


@pytest.fixture(scope="module")
def local(cluster, tmp_path_factory):
    """The same two seeds as a local (basic launcher) multirun, into a cache of its own: (numbers, cache)."""
    root = tmp_path_factory.mktemp("local")
    multirun(cluster, "seed=0,1", f"hydra.sweep.dir={root / 'sweep'}", f"paths.cache_dir={root / 'cache'}")
    found = numbers(root / "sweep")
    assert sorted(found) == [0, 1]
    return found, root / "cache"


def submitit_logs(sweep_dir: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sweep_dir.glob(".submitit/**/*_log.*"))


def test_a_two_seed_sweep_runs_as_slurm_jobs_and_matches_a_local_multirun(cluster, local, tmp_path):
    multirun(cluster, "seed=0,1", *SLURM, f"hydra.sweep.dir={tmp_path / 'sweep'}",
             f"paths.cache_dir={tmp_path / 'cache'}")
    job_dirs = [p for p in (tmp_path / "sweep" / ".submitit").iterdir() if p.is_dir()]
    assert job_dirs, "no submitit job directory: the jobs did not go through SLURM"
    assert numbers(tmp_path / "sweep") == local[0]


def copy_upstream(cache: Path, into: Path) -> None:
    """The SFT policies, pairs and RMs of a cache (their keys have no ppo.* key): only PPO and evaluation remain."""
    shutil.copytree(cache, into, ignore=lambda d, names: [n for n in names if n.startswith(("ppo-", "evaluate-"))]
                    if Path(d) == cache else [])


def test_a_job_past_its_time_limit_is_requeued_and_finishes_like_a_local_run(cluster, local, tmp_path):
    """Both PPO runs at 200 iterations (about 2 minutes of work on 2 cores, a checkpoint every 10) from the local
    sweep's SFT policies, pairs and RMs: under a one-minute limit the job is signalled and requeued at least once,
    and ends with the numbers of the same command run locally."""
    longer = ["seed=0", "ppo.iterations=200", "ppo.checkpoint_every=10"]
    copy_upstream(local[1], tmp_path / "local_cache")
    multirun(cluster, *longer, f"hydra.sweep.dir={tmp_path / 'local'}", f"paths.cache_dir={tmp_path / 'local_cache'}")
    copy_upstream(local[1], tmp_path / "cache")
    sweep = tmp_path / "sweep"
    multirun(cluster, *longer, *SLURM, "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=5",
             "hydra.launcher.max_num_timeout=20", f"hydra.sweep.dir={sweep}", f"paths.cache_dir={tmp_path / 'cache'}")
    # slurmctld logs each requeue once; submitit's own log lines are rewritten by the job's next attempt
    requeues = cluster.controller_log().count("Requeuing JobId=")
    assert requeues >= 1, f"the job was never requeued:\n{submitit_logs(sweep)[-2000:]}"
    assert numbers(sweep) == numbers(tmp_path / "local")
    print(f"requeued {requeues} time(s)")
