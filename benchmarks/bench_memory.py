"""Peak memory (RSS) of each stage at the default model and batch sizes, each stage in its own process.

Every stage runs through the real CLI in a fresh process, with a shared cache so each process builds only its
own stage (the ones it needs are already there). Step budgets are cut (peak memory is set by the model and batch
sizes, not by how many steps run); everything that sizes memory keeps its default. The baseline is a process
that imports the same libraries and builds nothing: the part of every number that is the runtime, not the stage.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import arguments, write_report

MARKER = "PEAK_RSS_KB="
# Runs the CLI in this process and reports the process's own peak RSS (ru_maxrss, KiB on Linux) on the way out.
WRAPPER = f"""
import resource, runpy, sys
sys.argv = ["pairwise-rl"] + sys.argv[1:]
try:
    runpy.run_module("pairwise_rl.cli", run_name="__main__")
finally:
    print("{MARKER}%d" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
"""
BASELINE = f"""
import resource
import lightning, torch, transformers, pairwise_rl.stages  # noqa: F401 -- what every stage process imports
print("{MARKER}%d" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
"""
SHORT = ["sft.max_steps=30", "sft.val_every=1000", "sft.checkpoint_every=1000", "eval.num_prompts=64",
         "rm.num_train_pairs=512", "rm.num_eval_pairs=128", "rm.max_steps=10", "rm.val_every=1000",
         "rm.checkpoint_every=1000", "ppo.iterations=2", "ppo.val_every=1000", "ppo.checkpoint_every=1000",
         "logger=csv", "trainer.progress_bar=none"]
GROUPS = ["ppo.samples_per_prompt=4", "ppo.rollout_batch_size=16", "ppo.minibatch_size=8"]
STAGES = [("sft", ["stage=sft"]), ("pairs", ["stage=pairs"]), ("rm (bt)", ["stage=rm", "rm=bt"]),
          ("rm (generative)", ["stage=rm", "rm=generative"]),
          ("ppo (standard, bt)", ["stage=ppo", "rm=bt", "ppo=standard"]),
          ("ppo (pairwise, generative)", ["stage=ppo", "rm=generative", "ppo=pairwise"]),
          # The critic's share: the same rollout (16 prompts x 4 samples), with and without a critic.
          ("ppo (gae, bt, 4 samples)", ["stage=ppo", "rm=bt", "ppo.advantage=gae", *GROUPS]),
          ("ppo (grpo, bt, 4 samples)", ["stage=ppo", "rm=bt", "ppo.advantage=grpo", *GROUPS])]


def peak_rss_mib(code: str, *argv: str) -> float:
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = [line for line in result.stdout.splitlines() if line.startswith(MARKER)]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{argv}: exit {result.returncode}\n{result.stderr[-3000:]}")
    return int(lines[-1][len(MARKER):]) / 1024


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    root = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    baseline = peak_rss_mib(BASELINE)
    peaks = {}
    for index, (name, overrides) in enumerate(STAGES):
        peaks[name] = peak_rss_mib(WRAPPER, *overrides, *SHORT, f"paths.cache_dir={root / 'cache'}",
                                   f"hydra.run.dir={root / 'runs' / str(index)}")
        print(f"{name}: {peaks[name]:.0f} MiB", flush=True)
    table = [["imports only (baseline)", f"{baseline:.0f}", "-"]]
    table += [[name, f"{mib:.0f}", f"{mib - baseline:.0f}"] for name, mib in peaks.items()]
    write_report(args.out, "memory", {"baseline_mib": baseline, "peak_mib": peaks}, table,
                 ["stage", "peak RSS (MiB)", "above baseline (MiB)"],
                 "Default tiny model and batch sizes, step budgets cut (see SHORT in the script); each stage in a "
                 "fresh process with `trainer=cpu`. ru_maxrss of the stage's process.")


if __name__ == "__main__":
    main()
