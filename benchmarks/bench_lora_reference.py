"""PPO under LoRA: the reference as the policy's own frozen base (shared) against a second loaded copy (before).

Each side runs `stage=ppo` through the real CLI in a fresh process (experiments/pairwise_vs_bt_hh's model and
data, LoRA, BT RM, a short PPO budget), sides alternating, with a shared cache so each process builds only its own
PPO artifact. The "separate" side swaps stages.ppo.build_reference for the previous behaviour, a second
load_causal_lm of the SFT policy. Reported: the process's peak RSS and the PPO stage's rollout+update seconds per
iteration (COMPLETE.json). --model smollm2 (make bench-real) or tiny (the default digits model).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import arguments, write_report

ROOT = Path(__file__).resolve().parent.parent  # the experiments' data paths are relative to the repository
MARKER = "PEAK_RSS_KB="
WRAPPER = f"""
import resource, runpy, sys
side = sys.argv.pop(1)
if side == "separate":
    from pairwise_rl.models.factory import load_causal_lm
    from pairwise_rl.precision import frozen_dtype
    from pairwise_rl.stages import ppo
    ppo.build_reference = lambda cfg, policy, sft_dir: load_causal_lm(sft_dir, frozen_dtype(cfg))
sys.argv = ["pairwise-rl"] + sys.argv[1:]
try:
    runpy.run_module("pairwise_rl.cli", run_name="__main__")
finally:
    print("{MARKER}%d" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
"""
REAL = ["experiment=pairwise_vs_bt_hh", "rm=bt", "ppo=standard", "rm.max_steps=2", "rm.num_eval_pairs=8",
        "ppo.iterations=2", "ppo.checkpoint_every=100", "eval.num_prompts=8"]
TINY = ["model.lora.enabled=true", "rm=bt", "ppo=standard", "sft.max_steps=20", "rm.max_steps=10",
        "rm.num_train_pairs=256", "rm.num_eval_pairs=64", "ppo.iterations=4", "ppo.checkpoint_every=100",
        "ppo.val_every=100", "eval.num_prompts=32"]


def run_side(side: str, overrides: list, root: Path, index: int) -> dict:
    run_dir = root / "runs" / str(index)
    result = subprocess.run([sys.executable, "-c", WRAPPER, side, "stage=ppo", *overrides, "logger=none",
                             "trainer.progress_bar=none", f"paths.cache_dir={root / side}",
                             f"hydra.run.dir={run_dir}"], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = [line for line in result.stdout.splitlines() if line.startswith(MARKER)]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{side}: exit {result.returncode}\n{result.stderr[-3000:]}")
    complete = json.loads(next((root / side).glob("ppo-*/COMPLETE.json")).read_text())
    iterations = int(next(o for o in overrides if o.startswith("ppo.iterations=")).split("=")[1])
    return {"peak_mib": int(lines[-1][len(MARKER):]) / 1024,
            "seconds_per_iteration": complete["phases"]["rollout+update"] / iterations}


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    overrides = REAL if args.model != "tiny" else TINY
    if args.model != "tiny":
        overrides = [*overrides, f"model.fetch.dir={ROOT}/artifacts/models/smollm2_135m_instruct"]
    root = Path(tempfile.mkdtemp(prefix="bench-lora-reference-"))
    runs = {"shared": [], "separate": []}
    for repeat in range(2):  # alternate; each repeat a fresh PPO artifact (its cache directory emptied first)
        for side in ("separate", "shared"):
            for old in (root / side).glob("ppo-*"):
                subprocess.run(["rm", "-rf", str(old)], check=True)
            runs[side].append(run_side(side, overrides, root, 2 * repeat + (side == "shared")))
            print(side, runs[side][-1], flush=True)
    median = {side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in runs.items()}
    table = [[side, f"{m['peak_mib']:.0f}", f"{m['seconds_per_iteration']:.2f}"] for side, m in median.items()]
    write_report(args.out, "lora_reference" + ("" if args.model == "tiny" else "_real"),
                 {"model": args.model, "runs": runs, "median": median}, table,
                 ["PPO reference under LoRA", "peak RSS (MiB)", "rollout+update s / iteration"],
                 f"stage=ppo with LoRA on {'SmolLM2-135M-Instruct, HH-RLHF' if args.model != 'tiny' else 'the tiny model'}"
                 f", trainer.precision=auto; median of 2 alternating fresh processes per side. shared: the "
                 "reference is the policy's frozen base (models/lora.adapter_free_view); separate: a second copy "
                 "of the SFT weights (the code before).")


if __name__ == "__main__":
    main()
