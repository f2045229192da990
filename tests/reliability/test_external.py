"""External services: W&B trouble never kills training; a missing hub model or dataset fails fast and says how to
use a local path."""

import pytest
import wandb
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from pairwise_rl.cli import run
from pairwise_rl.errors import DataSourceError
from pairwise_rl.pipeline import COMPLETE
from pairwise_rl.training import ResilientWandbLogger, build_loggers


def test_wandb_init_failure_falls_back_to_csv_with_a_warning(make_cfg, tmp_path, monkeypatch, caplog):
    def broken(self):
        raise ConnectionError("api.wandb.ai unreachable")

    monkeypatch.setattr(WandbLogger, "experiment", property(broken))
    loggers = build_loggers(make_cfg("logger=wandb"), tmp_path, "sft", "run")
    assert [type(lg) for lg in loggers] == [CSVLogger]
    assert "W&B logging unavailable" in caplog.text and "unreachable" in caplog.text


def test_wandb_logging_failure_mid_run_is_a_warning_and_the_stage_completes(make_debug_cfg, monkeypatch, caplog):
    calls = []

    def flaky(self, metrics, step=None):
        calls.append(id(self))
        raise TimeoutError("W&B service stopped responding")

    monkeypatch.setattr(WandbLogger, "log_metrics", flaky)
    out = run(make_debug_cfg("stage=rm", "rm=bt", "rm.max_steps=6", "logger=wandb"))
    assert (out / COMPLETE).exists()
    assert len(calls) == len(set(calls))  # each stage's logger failed once, then stopped calling W&B
    assert "W&B log_metrics failed" in caplog.text
    assert (out / "logs").exists()  # the CSV record is complete
    assert wandb.run is None  # the failed run was still finished: the next stage's wandb.init starts its own


def test_resilient_logger_swallows_every_call_after_a_failure(tmp_path, monkeypatch):
    logger = ResilientWandbLogger(project="p", save_dir=str(tmp_path), mode="disabled")
    monkeypatch.setattr(WandbLogger, "log_table", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("quota")))
    logger.log_table(key="t", columns=["a"], data=[[1]])
    assert logger.failed
    logger.log_metrics({"x": 1.0}, step=0)  # no exception, no call


def test_missing_hub_model_fails_fast_with_a_local_path_hint(make_cfg, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="no-such-org/no-such-model") as caught:
        run(make_cfg("stage=sft", "model.name_or_path=no-such-org/no-such-model"))
    assert "set model.name_or_path=/path/to/that/dir" in caught.value.fix


def test_missing_hub_dataset_fails_fast_with_a_local_path_hint(make_cfg, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataSourceError, match="no-such-org/no-such-dataset") as caught:
        run(make_cfg("stage=rm", "data=hh_rlhf", "data.path=no-such-org/no-such-dataset", "debug=fast"))
    assert "set data.path=/path/to/that/file" in caught.value.fix
