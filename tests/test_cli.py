"""The command line as a user meets it: --help, and errors as one line plus the fix, without a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pairwise_rl import errors
from pairwise_rl.cli import CONF_DIR
from pairwise_rl.cli_help import config_groups, help_text, stage_lines

REPO = Path(__file__).resolve().parent.parent


def pairwise_rl(*args, tmp_path, **env):
    """The installed console script's code path (`python -m pairwise_rl.cli` runs the same main())."""
    command = [sys.executable, "-m", "pairwise_rl.cli", *args, f"paths.cache_dir={tmp_path / 'cache'}",
               f"hydra.run.dir={tmp_path / 'run'}", "logger=none"]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **env})


def test_help_lists_every_registered_stage_with_its_docstring_line_and_every_group():
    import pairwise_rl.stages  # registers every stage
    from pairwise_rl.stages.registry import STAGES, describe

    assert stage_lines() == [(name, describe(name)) for name in STAGES.names()]
    assert all(doc for _, doc in stage_lines())  # every stage says what it does
    text = help_text(Path(CONF_DIR))
    for name, doc in stage_lines():
        assert f"  {name}" in text and doc in text
    groups = config_groups(Path(CONF_DIR))
    assert {"model", "data", "rm", "ppo", "trainer", "experiment", "sweep"} <= set(groups)
    assert "pairwise_vs_bt_hh" in groups["experiment"] and "tiny_llama*" in text and "bt*" in text


def test_help_is_printed_without_composing_a_config(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pairwise_rl.cli", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("pairwise-rl: compare RLHF setups")
    assert "stages" in done.stdout and "--hydra-help" in done.stdout and not (tmp_path / "outputs").exists()


def test_a_config_error_is_one_line_and_the_fix_without_a_traceback(tmp_path):
    done = pairwise_rl("stage=sft", "rm.lr=-1", tmp_path=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: rm.lr: must be > 0, got -1.0",
        "fix: set the key on the command line (key=value) or in its YAML; `pairwise-rl stage=<stage> --cfg job` "
        "prints the composed config"]
    full = pairwise_rl("stage=sft", "rm.lr=-1", tmp_path=tmp_path, HYDRA_FULL_ERROR="1")
    assert full.returncode == 1 and "Traceback" in full.stderr and "ConfigError: rm.lr" in full.stderr


def test_a_missing_data_file_is_named_without_a_traceback(tmp_path):
    done = pairwise_rl("stage=pairs", "data=jsonl", f"data.path={tmp_path / 'nope.jsonl'}", tmp_path=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-2] == f"error: data.path='{tmp_path / 'nope.jsonl'}': no such file"
    assert lines[-1].startswith("fix: give the path of a .jsonl")


@pytest.mark.parametrize("name", ["pairwise_rl.config.ConfigError", "pairwise_rl.data.readers.DataError",
                                  "pairwise_rl.errors.DataSourceError", "pairwise_rl.errors.ModelNotFoundError",
                                  "pairwise_rl.pipeline.StaleArtifactError",
                                  "pairwise_rl.comparison.load.MixedCodeError",
                                  "pairwise_rl.models.gguf.FetchError"])
def test_every_error_raised_on_purpose_is_a_user_error_with_a_fix(name):
    import importlib

    module, _, attr = name.rpartition(".")
    cls = getattr(importlib.import_module(module), attr)
    assert issubclass(cls, errors.UserError) and cls.fix  # a default fix; a raise site may give a closer one
