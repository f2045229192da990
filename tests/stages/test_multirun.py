"""A real Hydra multirun (the CLI in a subprocess): the 2x2 as four jobs, then stage=compare over them."""

import csv
import os
import subprocess
import sys

from pairwise_rl.eval.io import read_json
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
