"""A tuning sweep at debug size, laid out as Hydra's multirun writes it (one directory per job with its overrides),
then stage=compare: the selected trial is the one a hand computation over the validation column picks, and the
selection never reads the test split (a sweep over data whose test labels are flipped selects the same trials)."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from pairwise_rl.cli import run
from pairwise_rl.errors import DataSourceError
from pairwise_rl.files import read_json
from pairwise_rl.pipeline import COMPLETE
from pairwise_rl.tasks.base import load_task
from tests.stages.test_real_data_pipeline import real_tokenizer_overrides, write_hh_fixture



def sweep(factory, directory: Path, trials, seeds, *overrides):
    """One in-process job per (trial, seed), each in its own directory with the .hydra/overrides.yaml a multirun
    leaves (what stage=compare reads to tell the jobs apart)."""
    for trial in trials:
        for seed in seeds:
            job = [f"tune.trial={trial}", f"seed={seed}"]
            cfg = factory(*overrides, *job)
            out = directory / f"{trial}_{seed}"
            with open_dict(cfg):
                cfg.paths.output_dir = str(out)
            (out / ".hydra").mkdir(parents=True, exist_ok=True)
            OmegaConf.save(OmegaConf.create(job), out / ".hydra" / "overrides.yaml")
            run(cfg)
    return directory


@pytest.mark.slow  # experiments/tune_digits.yaml at debug size (2 of its trials x 2 seeds): 8 PPO runs, about a minute. Twins in `make test`: the RM-only sweep below (a real sweep, selection by
# hand, test labels flipped), tests/comparison/test_tuning.py (selection, pairing, incomplete sweeps by hand)
def test_a_ppo_tuning_sweep_selects_each_arm_on_validation_gold(make_debug_cfg, tmp_path):
    directory = sweep(make_debug_cfg, tmp_path / "multirun", (0, 1), (0, 1), "experiment=tune_digits", "tune.budget=2")
    result = read_json(directory / "1_0" / "result.json")
    point = result["tuning"]["pairwise_rl"]["point"]
    assert set(point) == {"rm.lr", "rm.max_steps", "ppo.policy_lr", "ppo.reward_transform"}
    assert {k: v for k, v in result["tuning"]["traditional"]["point"].items() if k != "ppo.reward_transform"} == {
        k: v for k, v in point.items() if k != "ppo.reward_transform"}  # the keys both arms search: one draw
    assert result["results"]["traditional"]["val gold (sampled)"] is not None  # the policy's validation prompts
    assert result["results"]["traditional"]["val RM accuracy"] is not None  # the RM's validation pairs

    summary = run(make_debug_cfg("stage=compare", f"compare.dir={directory}", "experiment=tune_digits"))
    assert "traditional [tune.trial=1]" in summary and "pairwise_rl [tune.trial=0]" in summary
    selected = read_json(directory / "tuning_selected.json")
    for arm in ("traditional", "pairwise_rl"):  # by hand: the mean over both seeds of each trial's val gold
        val = {t: sum(read_json(directory / f"{t}_{s}" / "result.json")["results"][arm]["val gold (sampled)"]
                      for s in (0, 1)) / 2 for t in (0, 1)}
        best = max(val, key=lambda t: (val[t], -t))
        assert selected[arm]["trial"] == best and selected[arm]["validation"] == pytest.approx(val[best])
        assert selected[arm]["budget"] == 2 and selected[arm]["metric"] == "val gold (sampled)"
    with open(directory / "compare_tuning_trials.csv") as handle:
        trials = list(csv.DictReader(handle))
    assert [(r["arm"], r["trial"]) for r in trials] == [("traditional", "0"), ("traditional", "1"),
                                                         ("pairwise_rl", "0"), ("pairwise_rl", "1")]
    assert trials[1]["settings"].startswith("rm.lr=0.001392") and trials[0]["settings"] == "defaults"
    table = (directory / "compare.md").read_text()
    assert "Tuning: each arm's trial selected on validation data only" in table
    assert "pairwise_rl − traditional, tuned" in table and "pairwise_rl − traditional, untuned" in table
    assert "++tune.pick={traditional: " in table

    # a killed sweep: one job's result gone, the comparison refuses to select among what finished
    (directory / "1_1" / "result.json").unlink()
    with pytest.raises(DataSourceError, match=r"the tuning sweep is incomplete: 2 runs missing \(traditional trial 1 "
                                              r"seed 1, pairwise_rl trial 1 seed 1\)"):
        run(make_debug_cfg("stage=compare", f"compare.dir={directory}", "experiment=tune_digits"))


def flip_test_labels(source: Path, target: Path, test_prompts) -> int:
    """A copy of an HH-format file with chosen and rejected swapped on every test-split row."""
    flipped, lines = 0, []
    for line in source.read_text().splitlines():
        row = json.loads(line)
        prompt = row["chosen"][:row["chosen"].rindex("Assistant:") + len("Assistant:")]
        if prompt in test_prompts:
            row = {"chosen": row["rejected"], "rejected": row["chosen"]}
            flipped += 1
        lines.append(json.dumps(row))
    target.write_text("\n".join(lines) + "\n")
    return flipped


def test_selection_never_reads_the_test_split(make_cfg, tmp_path):
    """RM-only arms on a preference file (two BT budgets: the generative judge's trials cost 4x more on this
    vocabulary, and the selection is the same code for both), selected on validation NLL; the same sweep over the file with its test
    labels flipped selects the same trials with the same validation numbers, while its test accuracy moves."""
    clean = write_hh_fixture(tmp_path / "hh.jsonl")
    common = ["debug=fast", "pipeline.setups=[{name: bt, rm: bt, last_stage: rm}, "
              "{name: bt_long, rm: bt, last_stage: rm, overrides: {rm.max_steps: 20}}]", "data.val_fraction=0.25",
              "data.test_fraction=0.25", "++tune.spaces={bt: {rm.lr: [1.0e-4, 3.0e-3]}, bt_long: {rm.lr: [1.0e-4, 3.0e-3]}}",
              "tune.sampler=grid", "tune.include_default=false", "tune.budget=2", "tune.select.metric='val RM NLL'",
              "tune.select.mode=min", "stage=pipeline", "judge.name=none",
              "pipeline.parallel_setups=1"]
    task = load_task(make_cfg(*real_tokenizer_overrides(clean), *common))
    test_prompts = {p.prompt for p in task.splits()["test"]}
    corrupt = tmp_path / "hh_flipped.jsonl"
    assert flip_test_labels(clean, corrupt, test_prompts) == len(task.splits()["test"]) > 10

    chosen, tables = {}, {}
    for name, path in (("clean", clean), ("flipped", corrupt)):
        directory = sweep(make_cfg, tmp_path / name, (0, 1), (0,), *real_tokenizer_overrides(path), *common)
        run(make_cfg(*real_tokenizer_overrides(path), "stage=compare", f"compare.dir={directory}"))
        chosen[name] = read_json(directory / "tuning_selected.json")
        with open(directory / "compare_tuning_trials.csv") as handle:
            tables[name] = {(r["arm"], r["trial"]): r for r in csv.DictReader(handle)}
    assert chosen["clean"] == chosen["flipped"]  # same trials, same validation NLL to the last bit

    # a killed sweep resumes: rerunning a lost job serves every artifact from the cache, nothing is retrained
    job = tmp_path / "clean" / "1_0"
    built = {p: read_json(Path(p) / COMPLETE)["finished_at"]
             for paths in read_json(job / "result.json")["artifacts"].values() for p in paths.values()}
    shutil.rmtree(job)
    sweep(make_cfg, tmp_path / "clean", (1,), (0,), *real_tokenizer_overrides(clean), *common)
    assert {p: read_json(Path(p) / COMPLETE)["finished_at"] for p in built} == built
    for arm, choice in chosen["clean"].items():  # by hand: the trial with the lower validation NLL
        nll = {t: read_json(tmp_path / "clean" / f"{t}_0" / "result.json")["results"][arm]["val RM NLL"] for t in (0, 1)}
        assert choice["trial"] == min(nll, key=nll.get) and choice["validation"] == nll[choice["trial"]]
        assert choice["point"] == {"rm.lr": [1.0e-4, 3.0e-3][choice["trial"]]}
    for key, row in tables["clean"].items():
        assert row["val RM NLL"] == tables["flipped"][key]["val RM NLL"]
        assert float(row["RM accuracy"]) + float(tables["flipped"][key]["RM accuracy"]) == pytest.approx(1.0)
