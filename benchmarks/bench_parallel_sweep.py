"""A real-size sweep on one machine three ways: jobs and setups one after another (the basic launcher, as before),
jobs side by side (`sweep=local`: Hydra's joblib launcher, cores / jobs threads each), and jobs one after another
with each job's setups side by side (`pipeline.parallel_setups=auto`).

The sweep is `pairwise-rl -m experiment=pairwise_vs_bt 'ppo.kl.target=0.1,1.0'`: two jobs, each two PPO runs and
their evaluations at the default budget. The SFT policy, the pairs and both RMs are built once first (the
`prepare` step, not timed) and every way starts from a copy of that cache, so what is timed is the PPO work a KL
sweep adds. Each way runs through the real CLI in a fresh process; the report gives wall seconds, the jobs per hour
and the speed-up over one after another. Run nothing else meanwhile (about 15 minutes on 2 cores).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import arguments, write_report

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ["experiment=pairwise_vs_bt", "ppo.kl.target=0.1,1.0", "logger=csv", "trainer.progress_bar=none"]
JOBS = 2
WAYS = {  # name -> (what it is, extra overrides)
    "one_after_another": ("basic launcher, setups one after another, all threads", ["pipeline.parallel_setups=1"]),
    "jobs_side_by_side": ("sweep=local: jobs side by side, cores / jobs threads each", ["sweep=local"]),
    "setups_side_by_side": ("basic launcher, each job's setups side by side (pipeline.parallel_setups=auto)", []),
}


def cli(*overrides: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    subprocess.run([sys.executable, "-m", "pairwise_rl.cli", *overrides], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def main() -> None:
    args = arguments(__doc__.split("\n")[0])
    work = Path(args.out) / ".parallel_sweep"
    shutil.rmtree(work, ignore_errors=True)
    prepared = work / "prepared"
    for mode in ("bt", "generative"):  # the shared stages, once, outside the timing
        cli("stage=rm", f"rm={mode}", "logger=csv", "trainer.progress_bar=none", f"paths.cache_dir={prepared}",
            f"hydra.run.dir={work / 'prepare'}")
    seconds = {}
    for name, (_, extra) in WAYS.items():
        cache = work / name / "artifacts"
        shutil.copytree(prepared, cache)
        started = time.perf_counter()
        cli("-m", *SWEEP, *extra, f"paths.cache_dir={cache}", f"hydra.sweep.dir={work / name / 'multirun'}")
        seconds[name] = time.perf_counter() - started
        print(f"{name}: {seconds[name]:.1f} s", flush=True)
    base = seconds["one_after_another"]
    table = [[name, what, f"{seconds[name]:.0f}", f"{JOBS * 3600 / seconds[name]:.1f}", f"{base / seconds[name]:.2f}x"]
             for name, (what, _) in WAYS.items()]
    write_report(args.out, "parallel_sweep", {"sweep": SWEEP, "jobs": JOBS, "seconds": seconds},
                 table, ["way", "what", "wall s", "jobs / hour", "vs one after another"],
                 "A two-job real-size sweep (`-m experiment=pairwise_vs_bt 'ppo.kl.target=0.1,1.0'`, SFT, pairs "
                 "and RMs prepared once), each way in a fresh CLI process, one after another.")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
